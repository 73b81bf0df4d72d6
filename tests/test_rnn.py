"""Recurrent layers: readable cases, then random configurations against torch."""

import pytest
from hypothesis import assume, event, given
from hypothesis import strategies as st

from shapecalc import ShapeError, rnn, rnn_cell
from tests.conftest import TORCH, needs_torch, torch_outcome

# The tutorial in shared/seeds: (constructor args, input, h_0, output, h_n).
TUTORIAL = [
    (
        dict(input_size=10, hidden_size=10, num_layers=1),
        (12, 64, 10),
        (1, 64, 10),
        (12, 64, 10),
        (1, 64, 10),
    ),
    (
        dict(input_size=10, hidden_size=5, num_layers=2, batch_first=True),
        (64, 12, 10),
        (2, 64, 5),
        (64, 12, 5),
        (2, 64, 5),
    ),
    (
        dict(input_size=10, hidden_size=5, num_layers=4, bidirectional=True),
        (5, 64, 10),
        (8, 64, 5),
        (5, 64, 10),
        (8, 64, 5),
    ),
]


@pytest.mark.parametrize("args, x, h0, out, hn", TUTORIAL)
def test_tutorial_shapes(args, x, h0, out, hn):
    result = rnn(x, hx_shape=h0, **args)
    assert result.shapes == {"input": x, "h_0": h0, "output": out, "h_n": hn}


@needs_torch
@pytest.mark.parametrize("device", ["cpu", "meta"])
@pytest.mark.parametrize("args, x, h0, out, hn", TUTORIAL)
def test_tutorial_shapes_verify(args, x, h0, out, hn, device):
    from shapecalc.verify import verify

    verified = verify(rnn(x, hx_shape=h0, **args), device)
    assert (verified.ok, verified.error) == (True, None)
    assert (verified.shapes["output"], verified.shapes["h_n"]) == (out, hn)


CASES = [
    # LSTM with projection: h has proj_size features, c keeps hidden_size.
    (
        dict(
            mode="lstm",
            input_size=3,
            hidden_size=4,
            proj_size=2,
            num_layers=2,
            bidirectional=True,
        ),
        (5, 2, 3),
        {
            "h_0": (4, 2, 2),
            "c_0": (4, 2, 4),
            "output": (5, 2, 4),
            "h_n": (4, 2, 2),
            "c_n": (4, 2, 4),
        },
        2 * (16 * 3 + 16 * 2 + 32 + 8) + 2 * (16 * 4 + 16 * 2 + 32 + 8),
    ),
    # unbatched GRU: no N anywhere.
    (
        dict(mode="gru", input_size=7, hidden_size=3),
        (9, 7),
        {"h_0": (1, 3), "output": (9, 3), "h_n": (1, 3)},
        3 * 3 * (7 + 3) + 2 * 9,
    ),
]


@pytest.mark.parametrize("args, x, shapes, parameters", CASES)
def test_cases(args, x, shapes, parameters):
    result = rnn(x, **args)
    assert {k: v for k, v in result.shapes.items() if k != "input"} == shapes
    assert result.parameters == parameters


REJECTED = [
    (
        dict(input_size=10, hidden_size=5),
        (12, 64, 9),
        "input",
        "input must have input_size=10 features in its last dim, got (12, 64, 9)",
    ),
    (
        dict(input_size=10, hidden_size=5, hx_shape=(64, 5)),
        (12, 64, 10),
        "h_0",
        "h_0 must be (1, 64, 5) for this batched input, got (64, 5)",
    ),
    (
        dict(mode="lstm", input_size=3, hidden_size=4, proj_size=4),
        (2, 3),
        "proj_size",
        "proj_size must be smaller than hidden_size=4, got 4",
    ),
    (
        dict(mode="gru", input_size=3, hidden_size=4, proj_size=1),
        (2, 3),
        "proj_size",
        "proj_size must be 0 for GRU (only LSTM has projections), got 1",
    ),
    (
        dict(input_size=3, hidden_size=4, dropout=1.5),
        (2, 3),
        "dropout",
        "dropout must be a probability in [0, 1], got 1.5",
    ),
    (
        dict(input_size=3, hidden_size=0),
        (2, 3),
        "hidden_size",
        "hidden_size must be greater than zero, got 0",
    ),
    (
        dict(input_size=3, hidden_size=4),
        (0, 2, 3),
        "input",
        "input must be of sequence length L > 0, got (0, 2, 3)",
    ),
    (
        dict(mode="lstm", input_size=3, hidden_size=4, hx_shape=(1, 4)),
        (2, 3),
        "c_0",
        "c_0 must be given with h_0 (LSTM takes the pair (h_0, c_0) or neither)",
    ),
]


@pytest.mark.parametrize("args, x, param, message", REJECTED)
def test_rejected(args, x, param, message):
    with pytest.raises(ShapeError) as info:
        rnn(x, **args)
    assert (info.value.param, str(info.value)) == (param, message)


def test_dropout_with_one_layer_warns_like_torch():
    result = rnn((2, 3), input_size=3, hidden_size=4, dropout=0.5)
    assert result.warnings == (
        "dropout option adds dropout after all but last recurrent layer, so "
        "non-zero dropout expects num_layers greater than 1, but got dropout=0.5 "
        "and num_layers=1",
    )


# Differential tests: hypothesis draws configurations, valid and invalid alike,
# and torch decides. Sizes stay small so that each draw runs in milliseconds.
small = st.integers(0, 4)


def mostly(valid, invalid):
    """Seven draws in eight from ``valid``, so both outcomes are well covered."""
    return st.integers(0, 7).flatmap(lambda i: invalid if i == 0 else valid)


sizes = mostly(st.integers(1, 6), st.integers(-1, 0))
junk_shape = st.lists(small, min_size=1, max_size=4).map(tuple)


@st.composite
def rnn_configs(draw):
    mode = draw(st.sampled_from(["rnn", "lstm", "gru"]))
    args = dict(
        mode=mode,
        input_size=draw(sizes),
        hidden_size=draw(sizes),
        num_layers=draw(mostly(st.integers(1, 3), st.just(0))),
        bias=draw(st.booleans()),
        batch_first=draw(st.booleans()),
        bidirectional=draw(st.booleans()),
        dropout=draw(
            mostly(st.sampled_from([0.0, 0.3, 1.0]), st.sampled_from([1.5, -0.1]))
        ),
    )
    if mode == "rnn":
        args["nonlinearity"] = draw(st.sampled_from(["tanh", "relu"]))
    if mode == "lstm":
        args["proj_size"] = draw(mostly(st.integers(0, 3), st.integers(-1, 6)))
    batched = draw(st.booleans())
    features = draw(mostly(st.just(args["input_size"]), small))
    seq, batch = draw(mostly(st.integers(1, 4), st.just(0))), draw(st.integers(0, 3))
    x = (
        (seq, features)
        if not batched
        else ((batch, seq, features) if args["batch_first"] else (seq, batch, features))
    )
    x = draw(mostly(st.just(tuple(map(abs, x))), junk_shape))
    return args, x, draw(_states(args, x))


@st.composite
def _states(draw, args, x):
    if not draw(st.booleans()):
        return None, None
    d = 2 if args["bidirectional"] else 1
    lead = (d * max(args["num_layers"], 0),)
    if len(x) == 3:
        lead += (x[0] if args["batch_first"] else x[1],)
    h = lead + (args.get("proj_size") or args["hidden_size"],)
    c = lead + (args["hidden_size"],)
    h, c = (draw(mostly(st.just(tuple(map(abs, s))), junk_shape)) for s in (h, c))
    return h, c


def _torch_rnn(args, x, hx, cx):
    args = dict(args)
    cls = getattr(TORCH.nn, args.pop("mode").upper())

    def run(module):
        if hx is None:
            return module(TORCH.zeros(x))
        if cx is None:
            return module(TORCH.zeros(x), TORCH.zeros(hx))
        return module(TORCH.zeros(x), (TORCH.zeros(hx), TORCH.zeros(cx)))

    return torch_outcome(lambda: cls(**args), run)


def _ours(fn, *args, **kwargs):
    try:
        return "ok", fn(*args, **kwargs)
    except ShapeError as exc:
        return "error", exc


def _assert_agree(ours, theirs, rows):
    status, result = ours
    t_status, t_shapes, module = theirs
    event(f"torch: {t_status}")
    assert status == t_status, f"shapecalc: {result}; torch: {t_shapes}"
    if status == "ok":
        assert [result.shapes[r] for r in rows] == t_shapes
        assert result.parameters == sum(p.numel() for p in module.parameters())
        assert dict(result.weights) == {
            n: tuple(p.shape) for n, p in module.named_parameters()
        }


@needs_torch
@given(rnn_configs())
def test_rnn_agrees_with_torch(config):
    args, x, (hx, cx) = config
    if args["mode"] != "lstm":
        cx = None
    lstm = args["mode"] == "lstm"
    ours = _ours(rnn, x, hx_shape=hx, cx_shape=cx, **args)
    rows = ["output", "h_n", "c_n"] if lstm else ["output", "h_n"]
    _assert_agree(ours, _torch_rnn(args, x, hx, cx), rows)


@st.composite
def cell_configs(draw):
    mode = draw(st.sampled_from(["rnn", "lstm", "gru"]))
    args = dict(
        mode=mode,
        input_size=draw(sizes),
        hidden_size=draw(sizes),
        bias=draw(st.booleans()),
    )
    if mode == "rnn":
        args["nonlinearity"] = draw(st.sampled_from(["tanh", "relu"]))
    batch = draw(st.integers(0, 3))
    x = (batch, args["input_size"]) if draw(st.booleans()) else (args["input_size"],)
    x = draw(mostly(st.just(tuple(map(abs, x))), junk_shape))
    h = tuple(map(abs, (x[0],) * (len(x) == 2) + (args["hidden_size"],)))
    hx, cx = (
        draw(st.one_of(st.none(), mostly(st.just(h), junk_shape))) for _ in range(2)
    )
    return args, x, hx, cx


@needs_torch
@given(cell_configs())
def test_cells_agree_with_torch(config):
    args, x, hx, cx = config
    lstm = args["mode"] == "lstm"
    if not lstm:
        cx = None
    elif (hx is None) != (cx is None):
        hx = cx = None  # torch's LSTMCell takes the pair or neither
    # torch's cells unsqueeze hx for an unbatched input, so a 2-D hx of shape
    # (H, H) broadcasts into a (H, H) output: a quirk shapecalc rejects.
    assume(not (len(x) == 1 and hx is not None and len(hx) == 2))
    assume(not (len(x) == 1 and cx is not None and len(cx) == 2))
    ours = _ours(rnn_cell, x, hx_shape=hx, cx_shape=cx, **args)
    kwargs = {k: v for k, v in args.items() if k != "mode"}
    cls = getattr(
        TORCH.nn, {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[args["mode"]] + "Cell"
    )

    def run(module):
        if hx is None:
            return module(TORCH.zeros(x))
        if cx is None:
            return module(TORCH.zeros(x), TORCH.zeros(hx))
        return module(TORCH.zeros(x), (TORCH.zeros(hx), TORCH.zeros(cx)))

    theirs = torch_outcome(lambda: cls(**kwargs), run)
    _assert_agree(ours, theirs, ["h_1", "c_1"] if lstm else ["h_1"])


@pytest.mark.parametrize(
    "args, x, macs",
    [
        # per step and direction: every weight matrix times its vector once
        (dict(input_size=10, hidden_size=5), (12, 64, 10), 12 * 64 * (5 * 10 + 5 * 5)),
        (
            dict(
                mode="lstm",
                input_size=10,
                hidden_size=20,
                proj_size=5,
                bidirectional=True,
            ),
            (7, 3, 10),
            7 * 3 * 2 * (80 * 10 + 80 * 5 + 5 * 20),
        ),
        (dict(mode="gru", input_size=4, hidden_size=3), (9, 4), 9 * (9 * 4 + 9 * 3)),
    ],
)
def test_macs_by_hand(args, x, macs):
    assert rnn(x, **args).macs == macs


def test_cell_macs_and_steps():
    result = rnn_cell((5, 10), input_size=10, hidden_size=20, mode="lstm")
    assert result.macs == 5 * (80 * 10 + 80 * 20)
    assert [str(s) for s in result.steps] == ["H = hidden_size = 20 = 20"]


def test_steps_explain_the_state_shapes():
    result = rnn(
        (5, 64, 10), input_size=10, hidden_size=5, num_layers=4, bidirectional=True
    )
    assert [str(s) for s in result.steps] == [
        "D = 2 if bidirectional else 1 = bidirectional=True = 2",
        "H_out = proj_size if proj_size > 0 else hidden_size = hidden_size=5 = 5",
        "rows of h_0, h_n = D*num_layers = 2*4 = 8",
        "features of output = D*H_out = 2*5 = 10",
    ]

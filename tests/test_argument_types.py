"""Arguments of the wrong type: torch's verdict, not a TypeError or a float shape.

One argument of an otherwise valid layer takes a value of a drawn type; torch
decides whether it is taken, and shapecalc must agree (and, when it is taken,
give torch's shapes).
"""

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from shapecalc import ShapeError, conv, pool, rnn, rnn_cell
from tests.conftest import TORCH, needs_torch, torch_outcome

FLAGS = {"bias", "bidirectional", "ceil_mode", "count_include_pad"}

ODD_VALUES = st.sampled_from(
    [2, 1, 0, True, False, 2.0, 2.5, "2", "same", None, (2,), [2, 2], (2, 2.0), ()]
)

# name: (shapecalc call, torch class, its arguments, the input, arguments to vary)
LAYERS = {
    "conv": (
        lambda x, **a: conv(x, dims=2, **a),
        "Conv2d",
        dict(in_channels=2, out_channels=4, kernel_size=3),
        (1, 2, 6, 6),
        (
            "kernel_size",
            "stride",
            "padding",
            "dilation",
            "groups",
            "out_channels",
            "bias",
        ),
    ),
    "transposed": (
        lambda x, **a: conv(x, dims=1, transposed=True, **a),
        "ConvTranspose1d",
        dict(in_channels=2, out_channels=2, kernel_size=3, stride=2),
        (1, 2, 6),
        ("output_padding", "padding", "kernel_size"),
    ),
    "lstm": (
        lambda x, **a: rnn(x, mode="lstm", **a),
        "LSTM",
        dict(input_size=3, hidden_size=4, num_layers=2),
        (5, 1, 3),
        ("hidden_size", "num_layers", "proj_size", "dropout", "bidirectional"),
    ),
    "gru-cell": (
        lambda x, **a: rnn_cell(x, mode="gru", **a),
        "GRUCell",
        dict(input_size=3, hidden_size=4),
        (2, 3),
        ("hidden_size",),
    ),
    "maxpool": (
        lambda x, **a: pool(x, "max", dims=2, **a),
        "MaxPool2d",
        dict(kernel_size=2),
        (1, 2, 6, 6),
        ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    ),
    "avgpool": (
        lambda x, **a: pool(x, "avg", dims=2, **a),
        "AvgPool2d",
        dict(kernel_size=2),
        (1, 2, 6, 6),
        ("divisor_override", "stride", "count_include_pad"),
    ),
    "adaptive": (
        lambda x, **a: pool(x, "adaptive-avg", dims=2, **a),
        "AdaptiveAvgPool2d",
        dict(output_size=3),
        (1, 2, 6, 6),
        ("output_size",),
    ),
}


@needs_torch
@pytest.mark.parametrize("name", LAYERS)
@given(data=st.data())
def test_argument_types_agree_with_torch(name, data):
    ours_fn, cls, args, x, varied = LAYERS[name]
    arg = data.draw(st.sampled_from(varied), label="argument")
    value = data.draw(ODD_VALUES, label="value")
    args = args | {arg: value}
    try:
        ours = ours_fn(x, **args)
    except ShapeError as exc:
        ours = exc
    status, shapes, _ = torch_outcome(
        lambda: getattr(TORCH.nn, cls)(**args), lambda m: m(TORCH.zeros(x))
    )
    event(f"torch: {status}")
    if isinstance(ours, ShapeError) and isinstance(value, bool) != (arg in FLAGS):
        # torch takes True for an int in a few places (a conv's kernel_size, an
        # LSTM's hidden_size) and other values than True and False for some
        # flags (a conv's bias); shapecalc refuses both (README, limitations)
        return
    assert isinstance(ours, ShapeError) == (status == "error"), (ours, shapes)
    if status == "ok":
        assert [t.shape for t in ours.tensors if t.role == "output"] == shapes


@pytest.mark.parametrize(
    "call, param, message",
    [
        (
            lambda: rnn((5, 3), 3, 4.0),
            "hidden_size",
            "hidden_size must be an integer, got 4.0",
        ),
        (
            lambda: rnn((5, 3), 3, 4, dropout="0.5"),
            "dropout",
            "dropout must be a probability in [0, 1], got '0.5'",
        ),
        (
            lambda: rnn_cell((2, 3), 3, True),
            "hidden_size",
            "hidden_size must be an integer, got True",
        ),
        (
            lambda: pool((1, 2, 6, 6), "adaptive-avg", output_size=2.5),
            "output_size",
            "output_size must be a sequence of integers, got 2.5",
        ),
        (
            lambda: conv((1, 2, 6), 2, 2, 3, transposed=True, output_size=4),
            "output_size",
            "output_size must be a sequence of integers, got 4",
        ),
        (
            lambda: conv("1,2,6", 2, 2, 3),
            "input",
            "input must be a sequence of integers, got '1,2,6'",
        ),
    ],
)
def test_wrong_types_name_the_argument(call, param, message):
    with pytest.raises(ShapeError) as info:
        call()
    assert (info.value.param, str(info.value)) == (param, message)

"""Shapes of nn.RNN, nn.LSTM, nn.GRU and their single-step cells.

Shape (mirrors torch.nn.RNN / LSTM / GRU)::

    input   (L, H_in) unbatched, (L, N, H_in), or (N, L, H_in) if batch_first
    h_0     (D*num_layers, H_out) unbatched, else (D*num_layers, N, H_out)
    c_0     (D*num_layers, N, H_cell)                             LSTM only
    output  (L, N, D*H_out), or (N, L, D*H_out) if batch_first
    h_n     as h_0;  c_n as c_0

    where N = batch size, L = sequence length, D = 2 if bidirectional else 1,
    H_in = input_size, H_cell = hidden_size, H_out = proj_size if proj_size > 0
    else hidden_size. batch_first never applies to h_0, c_0, h_n or c_n.

Cells (torch.nn.RNNCell / LSTMCell / GRUCell) take one step::

    input (N, H_in) or (H_in);  hx, cx, h_1, c_1 (N, H) or (H), H = hidden_size
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from math import prod

from .common import (
    LayerResult,
    ShapeError,
    Step,
    Tensor,
    as_flag,
    as_int,
    as_number,
    as_shape,
    each,
    fail,
    fmt_shape,
)


class Mode(str, enum.Enum):
    rnn = "rnn"
    lstm = "lstm"
    gru = "gru"


class Nonlinearity(str, enum.Enum):
    tanh = "tanh"
    relu = "relu"


# Not a torch rule: torch builds a stack in time that grows with the square of
# its depth (on the meta device here: 10,000 layers in 11 s, 50,000 in 9 min),
# and shapecalc lists every weight, so a deeper stack is refused, not described.
MAX_LAYERS = 100_000
GATES = {Mode.rnn: 1, Mode.lstm: 4, Mode.gru: 3}
NAMES = {Mode.rnn: "RNN", Mode.lstm: "LSTM", Mode.gru: "GRU"}

_SHARED_ARGS = ("num_layers", "bias", "batch_first", "dropout", "bidirectional")


def torch_args(mode: Mode | str, cell: bool = False) -> tuple[str, ...]:
    """The keyword arguments of the torch class, device and dtype aside.

    >>> torch_args("gru", cell=True)
    ('input_size', 'hidden_size', 'bias')
    """
    mode = _mode(mode)
    own = ("nonlinearity",) if mode is Mode.rnn else ()
    if cell:
        return ("input_size", "hidden_size", "bias") + own
    if mode is Mode.lstm:
        own = ("proj_size",)
    return ("input_size", "hidden_size") + _SHARED_ARGS + own


DROPOUT_WARNING = (
    "dropout option adds dropout after all but last recurrent layer, so non-zero"
    " dropout expects num_layers greater than 1, but got dropout={} and"
    " num_layers={}"
)


def rnn(
    input_shape: Sequence[int],
    input_size: int,
    hidden_size: int,
    mode: Mode | str = Mode.rnn,
    num_layers: int = 1,
    nonlinearity: Nonlinearity | str = Nonlinearity.tanh,
    bias: bool = True,
    batch_first: bool = False,
    dropout: float = 0.0,
    bidirectional: bool = False,
    proj_size: int = 0,
    hx_shape: Sequence[int] | None = None,
    cx_shape: Sequence[int] | None = None,
) -> LayerResult:
    """Shapes of a whole-sequence recurrent layer on one input.

    >>> r = rnn((5, 64, 10), input_size=10, hidden_size=5, num_layers=4,
    ...         bidirectional=True)
    >>> r.shapes["output"], r.shapes["h_n"]
    ((5, 64, 10), (8, 64, 5))
    """
    mode = _mode(mode)
    nonlinearity = _check_nonlinearity(mode, nonlinearity)
    input_size, hidden_size, num_layers, proj_size = each(
        as_int,
        input_size=input_size,
        hidden_size=hidden_size,
        num_layers=num_layers,
        proj_size=proj_size,
    )
    dropout = as_number("dropout", dropout, "a probability in [0, 1]")
    bias, batch_first, bidirectional = each(
        as_flag, bias=bias, batch_first=batch_first, bidirectional=bidirectional
    )
    _check_constructor(mode, input_size, hidden_size, num_layers, dropout, proj_size)
    warnings = ()
    if dropout > 0 and num_layers == 1:
        warnings = (DROPOUT_WARNING.format(dropout, num_layers),)

    input_shape = as_shape("input", input_shape)
    if any(n < 0 for n in input_shape):
        raise fail("input", "made of sizes >= 0", fmt_shape(input_shape))
    if len(input_shape) not in (2, 3):
        raise fail("input", "2-D (L, H_in) or 3-D (batched)", fmt_shape(input_shape))
    batched = len(input_shape) == 3
    _check_features(input_shape, input_size)
    seq_len = input_shape[1 if batched and batch_first else 0]
    batch = (input_shape[0] if batch_first else input_shape[1]) if batched else None
    if seq_len < 1:
        raise fail("input", "of sequence length L > 0", fmt_shape(input_shape))

    d = 2 if bidirectional else 1
    h_out = proj_size or hidden_size
    lead = (d * num_layers,) + ((batch,) if batched else ())
    h_shape, c_shape = lead + (h_out,), lead + (hidden_size,)
    is_lstm = mode is Mode.lstm
    _check_states(is_lstm, batched, hx_shape, cx_shape, h_shape, c_shape)

    n = "N, " if batched else ""
    lead_f = f"D*num_layers, {n}"
    seq_f = ("N, L" if batch_first else "L, N") if batched else "L"
    out_shape = _seq_shape(seq_len, batch, d * h_out, batched, batch_first)
    rows = [
        Tensor("input", input_shape, f"({seq_f}, H_in)", "input"),
        Tensor("h_0", h_shape, f"({lead_f}H_out)", "state"),
    ]
    if is_lstm:
        rows.append(Tensor("c_0", c_shape, f"({lead_f}H_cell)", "state"))
    rows += [
        Tensor("output", out_shape, f"({seq_f}, D*H_out)", "output"),
        Tensor("h_n", h_shape, f"({lead_f}H_out)", "output"),
    ]
    if is_lstm:
        rows.append(Tensor("c_n", c_shape, f"({lead_f}H_cell)", "output"))

    weights = _layer_weights(
        mode, input_size, hidden_size, num_layers, bias, d, proj_size
    )
    params = {
        "input_size": input_size,
        "hidden_size": hidden_size,
        "num_layers": num_layers,
    }
    if mode is Mode.rnn:
        params["nonlinearity"] = nonlinearity.value
    params |= {
        "bias": bias,
        "batch_first": batch_first,
        "dropout": float(dropout),
        "bidirectional": bidirectional,
    }
    if is_lstm:
        params["proj_size"] = proj_size
    symbols = _symbols(
        batch,
        seq_len,
        input_size,
        d,
        num_layers,
        h_out,
        hidden_size if is_lstm else None,
    )
    states = ("h_0", "c_0") if hx_shape is not None else ()
    return LayerResult(
        layer=NAMES[mode],
        params=params,
        tensors=tuple(rows),
        symbols=symbols,
        parameters=_count(weights),
        weights=weights,
        forward={"states": states[: 2 if is_lstm else 1]},
        warnings=warnings,
        steps=_steps(bidirectional, num_layers, hidden_size, proj_size, is_lstm),
        macs=seq_len * (batch if batched else 1) * _matrix_macs(weights),
    )


def rnn_cell(
    input_shape: Sequence[int],
    input_size: int,
    hidden_size: int,
    mode: Mode | str = Mode.rnn,
    nonlinearity: Nonlinearity | str = Nonlinearity.tanh,
    bias: bool = True,
    hx_shape: Sequence[int] | None = None,
    cx_shape: Sequence[int] | None = None,
) -> LayerResult:
    """Shapes of one step of nn.RNNCell, nn.LSTMCell or nn.GRUCell.

    >>> rnn_cell((3, 10), input_size=10, hidden_size=20, mode="lstm").shapes["c_1"]
    (3, 20)
    """
    mode = _mode(mode)
    nonlinearity = _check_nonlinearity(mode, nonlinearity)
    input_size, hidden_size = each(
        as_int, input_size=input_size, hidden_size=hidden_size
    )
    bias = as_flag("bias", bias)
    # Cells check nothing in their constructor: a size of 0 gives empty tensors.
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
        if value < 0:
            raise fail(name, "zero or greater", value)

    input_shape = as_shape("input", input_shape)
    if any(n < 0 for n in input_shape):
        raise fail("input", "made of sizes >= 0", fmt_shape(input_shape))
    if len(input_shape) not in (1, 2):
        raise fail("input", "1-D (H_in) or 2-D (N, H_in)", fmt_shape(input_shape))
    batched = len(input_shape) == 2
    _check_features(input_shape, input_size)
    batch = input_shape[0] if batched else None
    state = ((batch,) if batched else ()) + (hidden_size,)
    is_lstm = mode is Mode.lstm
    _check_states(is_lstm, batched, hx_shape, cx_shape, state, state, cell=True)

    n = "N, " if batched else ""
    rows = [
        Tensor("input", input_shape, f"({n}H_in)", "input"),
        Tensor("hx", state, f"({n}H)", "state"),
    ]
    if is_lstm:
        rows.append(Tensor("cx", state, f"({n}H)", "state"))
    rows.append(Tensor("h_1", state, f"({n}H)", "output"))
    if is_lstm:
        rows.append(Tensor("c_1", state, f"({n}H)", "output"))

    gate = GATES[mode] * hidden_size
    weights = [("weight_ih", (gate, input_size)), ("weight_hh", (gate, hidden_size))]
    if bias:
        weights += [("bias_ih", (gate,)), ("bias_hh", (gate,))]
    params = {"input_size": input_size, "hidden_size": hidden_size, "bias": bias}
    if mode is Mode.rnn:
        params["nonlinearity"] = nonlinearity.value
    symbols = (("N", batch),) if batched else ()
    symbols += (("H_in", input_size), ("H", hidden_size))
    states = ("hx", "cx") if hx_shape is not None else ()
    return LayerResult(
        layer=NAMES[mode] + "Cell",
        params=params,
        tensors=tuple(rows),
        symbols=symbols,
        parameters=_count(weights),
        weights=tuple(weights),
        forward={"states": states[: 2 if is_lstm else 1]},
        steps=(Step("H", "hidden_size", str(hidden_size), hidden_size),),
        macs=(batch if batched else 1) * _matrix_macs(weights),
    )


def _mode(mode: Mode | str) -> Mode:
    try:
        return Mode(str(getattr(mode, "value", mode)).lower())
    except ValueError:
        raise fail("mode", "one of rnn, lstm, gru", repr(mode)) from None


def _check_features(input_shape: tuple[int, ...], input_size: int) -> None:
    if input_shape[-1] != input_size:
        raise ShapeError(
            "input",
            f"input must have input_size={input_size} features "
            f"in its last dim, got {fmt_shape(input_shape)}",
        )


def _check_nonlinearity(mode: Mode, nonlinearity: Nonlinearity | str) -> Nonlinearity:
    try:
        value = Nonlinearity(nonlinearity)
    except ValueError:
        raise fail("nonlinearity", "'tanh' or 'relu'", repr(nonlinearity)) from None
    if mode is not Mode.rnn and value is not Nonlinearity.tanh:
        raise fail(
            "nonlinearity",
            f"left unset for {NAMES[mode]} (it has fixed gates)",
            repr(value.value),
        )
    return value


def _check_constructor(
    mode: Mode,
    input_size: int,
    hidden_size: int,
    num_layers: int,
    dropout: float,
    proj_size: int,
) -> None:
    """The checks RNNBase.__init__ makes, in its order."""
    if mode is not Mode.lstm and proj_size != 0:
        raise fail(
            "proj_size", f"0 for {NAMES[mode]} (only LSTM has projections)", proj_size
        )
    if not 0 <= dropout <= 1:
        raise fail("dropout", "a probability in [0, 1]", dropout)
    for name, value in (
        ("input_size", input_size),
        ("hidden_size", hidden_size),
        ("num_layers", num_layers),
    ):
        if value <= 0:
            raise fail(name, "greater than zero", value)
    if num_layers > MAX_LAYERS:
        raise fail(
            "num_layers",
            f"at most {MAX_LAYERS}, the most shapecalc describes (it lists every "
            "weight; torch needs minutes to build 50000 layers)",
            num_layers,
        )
    if proj_size < 0:
        raise fail("proj_size", "zero (no projection) or greater", proj_size)
    if proj_size >= hidden_size:
        raise fail("proj_size", f"smaller than hidden_size={hidden_size}", proj_size)


def _check_states(
    is_lstm: bool,
    batched: bool,
    hx_shape,
    cx_shape,
    h_shape: tuple[int, ...],
    c_shape: tuple[int, ...],
    cell: bool = False,
) -> None:
    """Reject a hidden or cell state whose shape forward would refuse."""
    h_name, c_name = ("hx", "cx") if cell else ("h_0", "c_0")
    if hx_shape is not None:
        hx_shape = as_shape(h_name, hx_shape)
    if cx_shape is not None:
        cx_shape = as_shape(c_name, cx_shape)
    if cx_shape is not None and not is_lstm:
        raise ShapeError(
            c_name, f"{c_name} is only taken by LSTM layers, got {fmt_shape(cx_shape)}"
        )
    if is_lstm and (hx_shape is None) != (cx_shape is None):
        given, missing = (h_name, c_name) if cx_shape is None else (c_name, h_name)
        raise ShapeError(
            missing,
            f"{missing} must be given with {given} (LSTM "
            "takes the pair (h_0, c_0) or neither)",
        )
    for name, given, want in ((h_name, hx_shape, h_shape), (c_name, cx_shape, c_shape)):
        if given is not None and tuple(given) != want:
            kind = "batched" if batched else "unbatched"
            raise fail(
                name, f"{fmt_shape(want)} for this {kind} input", fmt_shape(given)
            )


def _seq_shape(seq_len, batch, features, batched, batch_first) -> tuple[int, ...]:
    if not batched:
        return (seq_len, features)
    if batch_first:
        return (batch, seq_len, features)
    return (seq_len, batch, features)


def _layer_weights(mode, input_size, hidden_size, num_layers, bias, d, proj_size):
    """Every parameter tensor, named and ordered as torch registers them."""
    gate = GATES[mode] * hidden_size
    h_out = proj_size or hidden_size
    weights = []
    for layer in range(num_layers):
        layer_in = input_size if layer == 0 else h_out * d
        for direction in range(d):
            sfx = f"_l{layer}" + ("_reverse" if direction else "")
            weights += [
                (f"weight_ih{sfx}", (gate, layer_in)),
                (f"weight_hh{sfx}", (gate, h_out)),
            ]
            if bias:
                weights += [(f"bias_ih{sfx}", (gate,)), (f"bias_hh{sfx}", (gate,))]
            if proj_size:
                weights.append((f"weight_hr{sfx}", (proj_size, hidden_size)))
    return tuple(weights)


def _steps(bidirectional, num_layers, hidden_size, proj_size, is_lstm):
    """How D, num_layers and proj_size give each state's shape."""
    d = 2 if bidirectional else 1
    h_out = proj_size or hidden_size
    source = f"proj_size={proj_size}" if proj_size else f"hidden_size={hidden_size}"
    steps = [
        Step("D", "2 if bidirectional else 1", f"bidirectional={bidirectional}", d),
        Step("H_out", "proj_size if proj_size > 0 else hidden_size", source, h_out),
        Step("rows of h_0, h_n", "D*num_layers", f"{d}*{num_layers}", d * num_layers),
        Step("features of output", "D*H_out", f"{d}*{h_out}", d * h_out),
    ]
    if is_lstm:
        steps.append(
            Step("H_cell", "hidden_size (c_0, c_n)", str(hidden_size), hidden_size)
        )
    return tuple(steps)


def _matrix_macs(weights) -> int:
    """Multiply-adds of one step: every weight matrix times its vector, once."""
    return sum(prod(shape) for name, shape in weights if name.startswith("weight"))


def _count(weights) -> int:
    return sum(prod(shape) for _, shape in weights)


def _symbols(batch, seq_len, input_size, d, num_layers, h_out, h_cell):
    symbols = [("N", batch)] if batch is not None else []
    symbols += [
        ("L", seq_len),
        ("H_in", input_size),
        ("D", d),
        ("num_layers", num_layers),
        ("H_out", h_out),
    ]
    if h_cell is not None:
        symbols.append(("H_cell", h_cell))
    return tuple(symbols)

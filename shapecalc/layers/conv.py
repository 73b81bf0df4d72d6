"""Shapes of nn.Conv1d/2d/3d and nn.ConvTranspose1d/2d/3d.

Shape (mirrors torch.nn.Conv2d and torch.nn.ConvTranspose2d)::

    input   (N, C_in, *spatial_in) or (C_in, *spatial_in)
    output  (N, C_out, *spatial_out) or (C_out, *spatial_out)
    weight  (C_out, C_in/groups, *kernel_size)     transposed: (C_in, C_out/groups, ...)
    bias    (C_out)

    per spatial dim i, with X the input size along it:
    conv        X_out = floor((X + 2*padding[i] - dilation[i]*(kernel_size[i]-1) - 1)
                              / stride[i] + 1)
    transposed  X_out = (X - 1)*stride[i] - 2*padding[i]
                        + dilation[i]*(kernel_size[i]-1) + output_padding[i] + 1
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from math import prod

from .common import (
    INT64,
    SPATIAL,
    LayerResult,
    ShapeError,
    Step,
    Tensor,
    as_flag,
    as_int,
    as_int_or_tuple,
    as_shape,
    as_tuple,
    check_non_negative,
    check_positive,
    each,
    fail,
    fmt_shape,
    spread,
    torch_form,
)
from .common import infer_dims as common_infer_dims


class PaddingMode(str, enum.Enum):
    zeros = "zeros"
    reflect = "reflect"
    replicate = "replicate"
    circular = "circular"


# per dims: the input, output and kernel symbols, e.g. "H_in, W_in"
SYMBOLS = {
    d: (
        ", ".join(f"{s}_in" for s in sym),
        ", ".join(f"{s}_out" for s in sym),
        ", ".join(f"k_{s}" for s in sym) if d > 1 else "k",
    )
    for d, sym in SPATIAL.items()
}
IntOrTuple = int | Sequence[int]


def torch_args(transposed: bool = False) -> tuple[str, ...]:
    """The keyword arguments of the torch class, device and dtype aside."""
    args = (
        "in_channels",
        "out_channels",
        "kernel_size",
        "stride",
        "padding",
        "dilation",
        "groups",
        "bias",
        "padding_mode",
    )
    return args + (("output_padding",) if transposed else ())


def infer_dims(
    input_shape: Sequence[int],
    in_channels: int,
    *tuple_options: tuple[str, IntOrTuple | str | None],
) -> int:
    """The number of spatial dims: from tuple-valued options, else the input.

    >>> infer_dims((8, 3, 224, 224), 3)
    2
    """
    return common_infer_dims(input_shape, tuple_options, channels=in_channels)


def conv(
    input_shape: Sequence[int],
    in_channels: int,
    out_channels: int,
    kernel_size: IntOrTuple,
    stride: IntOrTuple = 1,
    padding: IntOrTuple | str = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    bias: bool = True,
    padding_mode: PaddingMode | str = PaddingMode.zeros,
    transposed: bool = False,
    output_padding: IntOrTuple = 0,
    output_size: Sequence[int] | None = None,
    dims: int | None = None,
) -> LayerResult:
    """Shapes of a convolution (or transposed convolution) on one input.

    >>> conv((8, 3, 224, 224), 3, 16, kernel_size=3, stride=2, padding=1).shapes[
    ...     "output"]
    (8, 16, 112, 112)
    """
    input_shape = as_shape("input", input_shape)
    in_channels, out_channels, groups = each(
        as_int, in_channels=in_channels, out_channels=out_channels, groups=groups
    )
    kernel_size, stride, dilation, output_padding = each(
        as_int_or_tuple,
        kernel_size=kernel_size,
        stride=stride,
        dilation=dilation,
        output_padding=output_padding,
    )
    bias, transposed = each(as_flag, bias=bias, transposed=transposed)
    if not isinstance(padding, str):
        padding = as_int_or_tuple("padding", padding)
    if output_size is not None:
        output_size = as_shape("output_size", output_size)
    dims = as_int("dims", dims, none=True)
    # the options that tell the number of spatial dims: torch reads a
    # one-value stride, padding, dilation or output_padding in any number
    options = tuple(
        (name, value)
        for name, value in (
            ("kernel_size", kernel_size),
            ("stride", stride),
            ("padding", padding),
            ("dilation", dilation),
            ("output_padding", output_padding),
        )
        if name == "kernel_size" or not (isinstance(value, tuple) and len(value) == 1)
    )
    origin = ""
    if dims is None:
        dims = infer_dims(input_shape, in_channels, *options)
        # say which option made the layer this many-dimensional
        origin = next(
            (
                f" ({dims}-D from {name}={value})"
                for name, value in options
                if isinstance(value, tuple)
            ),
            "",
        )
    if dims not in (1, 2, 3):
        raise fail("dims", "1, 2 or 3", dims)
    # torch keeps these as given (a one-value tuple stays one value) ...
    given = {
        "stride": torch_form(stride, dims),
        "padding": padding if isinstance(padding, str) else torch_form(padding, dims),
        "dilation": torch_form(dilation, dims),
        "output_padding": torch_form(output_padding, dims),
    }
    # ... and its C++ ops read a one-value tuple as that value in every dim
    kernel_size = as_tuple(kernel_size, dims, "kernel_size")
    stride, dilation, output_padding = (
        spread(v, dims, n)
        for v, n in (
            (stride, "stride"),
            (dilation, "dilation"),
            (output_padding, "output_padding"),
        )
    )
    layer = f"Conv{'Transpose' if transposed else ''}{dims}d"
    if not transposed and any(output_padding):
        raise fail(
            "output_padding",
            f"left at 0 ({layer} takes no output_padding)",
            fmt_shape(output_padding),
        )
    mode = _check_constructor(
        layer,
        in_channels,
        out_channels,
        kernel_size,
        stride,
        padding,
        groups,
        padding_mode,
        transposed,
    )

    batched = _check_input_rank(layer + origin, input_shape, dims)
    spatial = input_shape[-dims:]
    check_positive("stride", stride)
    check_positive("dilation", dilation)
    check_positive("kernel_size", kernel_size)
    channels = input_shape[-dims - 1]
    if channels != in_channels:
        raise ShapeError(
            "input",
            f"input must have {in_channels} channels (in_channels) in dim "
            f"{len(input_shape) - dims - 1} for {layer}{origin}, got "
            f"{fmt_shape(input_shape)}",
        )
    if any(x < 1 for x in spatial):
        raise fail("input", "non-empty in every spatial dim", fmt_shape(input_shape))
    if transposed:
        if output_size is not None:
            _check_full_tuples(given, dims)
        out_spatial, lines, fwd = _transposed(
            spatial,
            kernel_size,
            stride,
            spread(padding, dims, "padding"),
            dilation,
            output_padding,
            output_size,
            batched,
        )
    else:
        if output_size is not None:
            raise fail(
                "output_size", "left unset for a non-transposed conv", list(output_size)
            )
        pads = _pad_pairs(padding, given, kernel_size, mode, len(input_shape))
        if mode is not PaddingMode.zeros:
            _check_padded_copy(input_shape, pads, mode)
        out_spatial, lines = _forward(
            spatial, kernel_size, stride, pads, dilation, mode
        )
        fwd = {}

    lead = (input_shape[0],) if batched else ()
    n = "N, " if batched else ""
    sym = SPATIAL[dims]
    in_f, out_f, k_f = SYMBOLS[dims]
    chans = ("C_in", "C_out") if transposed else ("C_out", "C_in")
    weight_shape = (
        (in_channels, out_channels // groups)
        if transposed
        else (out_channels, in_channels // groups)
    ) + kernel_size
    rows = [
        Tensor("input", input_shape, f"({n}C_in, {in_f})", "input"),
        Tensor(
            "weight", weight_shape, f"({chans[0]}, {chans[1]}/groups, {k_f})", "param"
        ),
    ]
    if bias:
        rows.append(Tensor("bias", (out_channels,), "(C_out)", "param"))
    rows.append(
        Tensor(
            "output",
            lead + (out_channels,) + out_spatial,
            f"({n}C_out, {out_f})",
            "output",
        )
    )

    params = {
        "in_channels": in_channels,
        "out_channels": out_channels,
        "kernel_size": kernel_size,
        "stride": given["stride"],
        "padding": given["padding"],
        "dilation": given["dilation"],
        "groups": groups,
        "bias": bias,
        "padding_mode": mode.value,
    }
    if transposed:
        params["output_padding"] = given["output_padding"]
    symbols = ((("N", input_shape[0]),) if batched else ()) + (
        ("C_in", in_channels),
        ("C_out", out_channels),
        ("groups", groups),
    )
    steps = tuple(
        Step(f"{s}_out", formula.replace("X_in", f"{s}_in"), arithmetic, value)
        for s, (formula, arithmetic, value) in zip(sym, lines)
    )
    # one multiply-add per weight tap reaching each output (plain) or leaving
    # each input (transposed) element; bias additions are not counted
    taps = weight_shape[1] * prod(kernel_size)
    macs = (prod(input_shape) if transposed else prod(rows[-1].shape)) * taps
    weights = (("weight", weight_shape),) + (
        (("bias", (out_channels,)),) if bias else ()
    )
    return LayerResult(
        layer=layer,
        params=params,
        tensors=tuple(rows),
        symbols=symbols,
        parameters=sum(prod(s) for _, s in weights),
        weights=weights,
        forward=fwd,
        steps=steps,
        macs=macs,
    )


def _check_constructor(
    layer,
    in_channels,
    out_channels,
    kernel_size,
    stride,
    padding,
    groups,
    padding_mode,
    transposed,
) -> PaddingMode:
    """The checks of _ConvNd.__init__, plus those the weight's creation makes."""
    if transposed and padding_mode != PaddingMode.zeros:
        raise fail("padding_mode", f"'zeros' for {layer}", repr(_value(padding_mode)))
    if groups <= 0:
        raise fail("groups", "greater than zero", groups)
    if in_channels <= 0:
        # torch accepts in_channels=0 for a plain conv and returns an empty
        # tensor with 0 channels, not C_out: a degenerate case not modelled here.
        raise fail("in_channels", "greater than zero", in_channels)
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
        if value % groups:
            raise fail(name, f"divisible by groups={groups}", value)
    if isinstance(padding, str):
        if transposed:
            raise fail(
                "padding", f"an int or a tuple of ints for {layer}", repr(padding)
            )
        if padding not in ("same", "valid"):
            raise fail("padding", "'same', 'valid', an int or a tuple", repr(padding))
        if padding == "same" and any(s != 1 for s in stride):
            raise fail(
                "stride", "1 in every dim when padding='same'", fmt_shape(stride)
            )
    try:
        mode = PaddingMode(padding_mode)
    except ValueError:
        raise fail(
            "padding_mode",
            "one of zeros, reflect, replicate, circular",
            repr(padding_mode),
        ) from None
    check_non_negative("out_channels", out_channels)
    check_non_negative("kernel_size", kernel_size)
    if out_channels == 0:
        raise fail("out_channels", "greater than zero", out_channels)
    return mode


def _check_input_rank(layer: str, input_shape: tuple[int, ...], dims: int) -> bool:
    if len(input_shape) not in (dims + 1, dims + 2):
        raise fail(
            "input",
            f"{dims + 1}-D (unbatched) or {dims + 2}-D (batched) for {layer}",
            fmt_shape(input_shape),
        )
    if any(x < 0 for x in input_shape):
        raise fail("input", "made of sizes >= 0", fmt_shape(input_shape))
    return len(input_shape) == dims + 2


def _pad_pairs(padding, given, kernel_size, mode, rank):
    """The (left, right) padding of every spatial dim.

    With zeros torch's C++ op pads, reading a one-value tuple as that value
    in every dim. The other modes pad first with
    F.pad, from the padding as the module keeps it: a tuple pads the last dims,
    as many as it has values, and 'same' zips dilation with kernel_size, so a
    one-value dilation pads the first spatial dim alone.
    """
    dims = len(kernel_size)
    if padding == "valid":
        return ((0, 0),) * dims
    if padding == "same":
        dilation = given["dilation"]
        if mode is PaddingMode.zeros:
            dilation = spread(dilation, dims, "dilation")
        pairs = [(0, 0)] * dims
        for i, (d, k) in enumerate(zip(dilation, kernel_size)):
            total = d * (k - 1)
            pairs[i] = (total // 2, total - total // 2)
        return tuple(pairs)
    if mode is PaddingMode.zeros:
        # F.pad would crop on a negative pad; the C++ op refuses one
        check_non_negative("padding", padding)
        return tuple((p, p) for p in spread(padding, dims, "padding"))
    pads = given["padding"]
    # F.pad pads the last len(pads) dims of an input one or two dims bigger
    # TODO: torch also takes more values than spatial dims here, padding the
    # channels (and batch) too; shapecalc refuses that rather than model it.
    fits = [n for n in range(1, dims + 1) if rank - 2 <= n <= rank - 1]
    if len(pads) not in fits:
        counts = " or ".join(map(str, fits)) + (" value" if fits == [1] else " values")
        raise fail(
            "padding",
            f"{counts} for padding_mode={mode.value!r} on a {rank}-D input (F.pad "
            "pads that many last dims)",
            fmt_shape(pads),
        )
    return ((0, 0),) * (dims - len(pads)) + tuple((p, p) for p in pads)


def _check_full_tuples(given, dims: int) -> None:
    """With output_size, torch's Python code reads stride, padding and dilation
    once per spatial dim: a one-value tuple is not spread there."""
    for name in ("stride", "padding", "dilation"):
        if len(given[name]) < dims:
            raise fail(
                name,
                f"{dims} values (or one int) when output_size is given",
                fmt_shape(given[name]),
            )


def _check_padded_copy(input_shape, pads, mode: PaddingMode) -> None:
    """F.pad makes a padded copy of the input first: it must fit torch's storage."""
    dims = len(pads)
    padded = input_shape[:-dims] + tuple(
        x + left + right for x, (left, right) in zip(input_shape[-dims:], pads)
    )
    if prod(padded) * 4 >= INT64:
        raise ShapeError(
            "padding",
            f"padding must leave a padded input of fewer than {INT64 // 4:,} "
            f"elements (padding_mode={mode.value!r} pads a copy of the input "
            f"first), got {fmt_shape(padded)}",
        )


def _forward(spatial, kernel_size, stride, pads, dilation, mode):
    """Output sizes of a plain convolution, and the arithmetic behind each."""
    _check_padding_mode(mode, spatial, pads)
    outs, lines = [], []
    for i, (x, (left, right), k, s, d) in enumerate(
        zip(spatial, pads, kernel_size, stride, dilation)
    ):
        span = d * (k - 1) + 1
        pad, pads_f = (
            (f"2*{left}", f"2*padding[{i}]")
            if left == right
            else (f"{left}+{right}", "padding_left+padding_right")
        )
        if x + left + right < span:
            raise ShapeError(
                "kernel_size",
                (
                    "kernel_size must fit the padded input, got "
                    f"dilation*(kernel_size-1)+1 = {d}*({k}-1)+1 = {span} > input "
                    f"{x} + padding {left + right} = {x + left + right} in spatial "
                    f"dim {i}"
                ),
                steps=(
                    Step(
                        "padded input",
                        f"{SPATIAL[len(spatial)][i]}_in + {pads_f}",
                        f"{x} + {pad}",
                        x + left + right,
                    ),
                    Step(
                        "effective kernel",
                        f"dilation[{i}]*(kernel_size[{i}]-1)+1",
                        f"{d}*({k}-1)+1",
                        span,
                    ),
                ),
            )
        out = (x + left + right - span) // s + 1
        outs.append(out)
        lines.append(
            (
                f"floor((X_in + {pads_f} - dilation[{i}]*(kernel_size[{i}]-1) - 1)"
                f"/stride[{i}] + 1)",
                f"floor(({x} + {pad} - {d}*({k}-1) - 1)/{s} + 1)",
                out,
            )
        )
    return tuple(outs), lines


def _check_padding_mode(mode: PaddingMode, spatial, pads) -> None:
    """reflect and circular pads come from the input itself, so they are bounded."""
    for i, (x, (left, right)) in enumerate(zip(spatial, pads)):
        big = max(left, right)
        if mode is PaddingMode.reflect and big >= x:
            raise fail(
                "padding",
                f"smaller than the input size {x} in spatial dim "
                f"{i} for padding_mode='reflect'",
                big,
            )
        if mode is PaddingMode.circular and big > x:
            raise fail(
                "padding",
                f"at most the input size {x} in spatial dim {i} "
                "for padding_mode='circular'",
                big,
            )


def _transposed(
    spatial,
    kernel_size,
    stride,
    padding,
    dilation,
    output_padding,
    output_size,
    batched,
):
    """Output sizes of a transposed convolution, honouring output_size."""
    check_non_negative("padding", padding)
    dims = len(spatial)
    base = [
        (x - 1) * s - 2 * p + d * (k - 1) + 1
        for x, s, p, d, k in zip(spatial, stride, padding, dilation, kernel_size)
    ]
    fwd = {}
    if output_size is not None:
        output_padding = _padding_for_size(output_size, base, stride, batched, dims)
        fwd = {"output_size": list(output_size)}
    else:
        check_non_negative("output_padding", output_padding)
        for i, (op, s, d) in enumerate(zip(output_padding, stride, dilation)):
            if op >= s and op >= d:
                raise fail(
                    "output_padding",
                    "smaller than stride or dilation, in "
                    f"spatial dim {i} stride={s} and dilation={d}",
                    op,
                )
    outs, lines = [], []
    for i, (x, b, op, s, p, d, k) in enumerate(
        zip(spatial, base, output_padding, stride, padding, dilation, kernel_size)
    ):
        out = b + op
        if out < 1:
            raise ShapeError(
                "padding",
                "padding must be small enough to leave an output, got "
                "(X_in-1)*stride - 2*padding + dilation*(k-1) + output_padding + 1"
                f" = ({x}-1)*{s} - 2*{p} + {d}*({k}-1) + {op} + 1 = {out} in "
                f"spatial dim {i}",
            )
        outs.append(out)
        lines.append(
            (
                f"(X_in-1)*stride[{i}] - 2*padding[{i}] + dilation[{i}]*"
                f"(kernel_size[{i}]-1) + output_padding[{i}] + 1",
                f"({x}-1)*{s} - 2*{p} + {d}*({k}-1) + {op} + 1",
                out,
            )
        )
    return tuple(outs), lines, fwd


def _padding_for_size(output_size, base, stride, batched, dims):
    size = list(output_size)
    if len(size) == dims + (2 if batched else 1):
        size = size[-dims:]
    if len(size) != dims:
        raise fail("output_size", f"{dims} values (one per spatial dim)", output_size)
    lows, highs = base, [b + s - 1 for b, s in zip(base, stride)]
    if any(not lo <= x <= hi for x, lo, hi in zip(size, lows, highs)):
        raise fail("output_size", f"between {lows} and {highs} for this input", size)
    return tuple(x - b for x, b in zip(size, base))


def _value(choice) -> str:
    return choice.value if isinstance(choice, enum.Enum) else str(choice)

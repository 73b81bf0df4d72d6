"""Shapes of nn.MaxPool, nn.AvgPool, nn.LPPool and nn.AdaptiveMax/AvgPool 1d/2d/3d.

Shape (mirrors torch.nn.MaxPool2d, AvgPool2d, LPPool2d and AdaptiveAvgPool2d)::

    input    (N, C, *spatial_in) or (C, *spatial_in)
    output   (N, C, *spatial_out) or (C, *spatial_out)
    indices  same as output (max kinds with return_indices=True)

    per spatial dim i, with X the input size along it:
    max       X_out = floor((X + 2*padding[i] - dilation[i]*(kernel_size[i]-1) - 1)
                            / stride[i] + 1)
    avg, lp   X_out = floor((X + 2*padding[i] - kernel_size[i]) / stride[i] + 1)
              (LPPool takes no padding: padding[i] = 0)
    ceil_mode ceil instead of floor, then minus 1 if the last window would start
              in the right padding, that is if (X_out-1)*stride[i] >= X + padding[i]
    adaptive  X_out = output_size[i], or X where output_size[i] is None

    stride defaults to kernel_size; pooling has no weights.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from math import isinf, prod
from typing import Any

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
    as_number,
    as_shape,
    check_non_negative,
    check_positive,
    fail,
    fmt_shape,
    spread,
)
from .common import infer_dims as common_infer_dims


class PoolKind(str, enum.Enum):
    max = "max"
    avg = "avg"
    lp = "lp"
    adaptive_max = "adaptive-max"
    adaptive_avg = "adaptive-avg"


CLASS = {
    PoolKind.max: "MaxPool",
    PoolKind.avg: "AvgPool",
    PoolKind.lp: "LPPool",
    PoolKind.adaptive_max: "AdaptiveMaxPool",
    PoolKind.adaptive_avg: "AdaptiveAvgPool",
}
ADAPTIVE = (PoolKind.adaptive_max, PoolKind.adaptive_avg)
WITH_INDICES = (PoolKind.max, PoolKind.adaptive_max)
# The keyword arguments of each torch class, in its order, with their defaults;
# kernel_size, norm_type and output_size have none and must be given (NEEDS).
DEFAULTS = {
    "kernel_size": None,
    "stride": None,
    "padding": 0,
    "dilation": 1,
    "ceil_mode": False,
    "count_include_pad": True,
    "divisor_override": None,
    "norm_type": None,
    "output_size": None,
    "return_indices": False,
}
TAKES = {
    PoolKind.max: (
        "kernel_size",
        "stride",
        "padding",
        "dilation",
        "return_indices",
        "ceil_mode",
    ),
    PoolKind.avg: (
        "kernel_size",
        "stride",
        "padding",
        "ceil_mode",
        "count_include_pad",
        "divisor_override",
    ),
    PoolKind.lp: ("norm_type", "kernel_size", "stride", "ceil_mode"),
    PoolKind.adaptive_max: ("output_size", "return_indices"),
    PoolKind.adaptive_avg: ("output_size",),
}
NEEDS = {"kernel_size", "norm_type", "output_size"}

IntOrTuple = int | Sequence[int]


def infer_dims(input_shape: Sequence[int], *tuple_options: tuple[str, Any]) -> int:
    """The number of spatial dims: from tuple-valued options, else the input rank.

    Without a channel count to tell them apart, rank 3 may be (N, C, L) or
    (C, H, W), and rank 4 (N, C, H, W) or (C, D, H, W).

    >>> infer_dims((8, 3, 32, 32), ("kernel_size", (3, 3)))
    2
    """
    return common_infer_dims(input_shape, tuple_options, spread_ones=True)


def pool(
    input_shape: Sequence[int],
    kind: PoolKind | str,
    kernel_size: IntOrTuple | None = None,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    norm_type: float | None = None,
    output_size: int | Sequence[int | None] | None = None,
    return_indices: bool = False,
    dims: int | None = None,
) -> LayerResult:
    """Shapes of a pooling layer on one input.

    >>> pool((8, 3, 32, 32), "max", kernel_size=(3, 3), stride=2, padding=1).shapes[
    ...     "output"]
    (8, 3, 16, 16)
    """
    options = _typed({k: v for k, v in locals().items() if k in DEFAULTS})
    input_shape, kind = as_shape("input", input_shape), _kind(kind)
    dims = as_int("dims", dims, none=True)
    if dims is None:
        dims = infer_dims(input_shape, *((k, options[k]) for k in TAKES[kind]))
    if dims not in (1, 2, 3):
        raise fail("dims", "1, 2 or 3", dims)
    layer = f"{CLASS[kind]}{dims}d"
    _check_taken(torch_args(kind, dims), layer, options)

    if kind in ADAPTIVE:
        params, out_spatial, lines = _adaptive(kind, layer, dims, input_shape, options)
    else:
        params, out_spatial, lines = _window(kind, layer, dims, input_shape, options)
    if kind is PoolKind.adaptive_max or (kind is PoolKind.max and dims > 1):
        _check_hidden_indices(layer, input_shape[:-dims] + out_spatial)
    return _result(
        layer,
        params,
        input_shape,
        out_spatial,
        lines,
        with_indices=kind in WITH_INDICES and return_indices,
    )


def _check_hidden_indices(layer: str, output: tuple[int, ...]) -> None:
    """These ops build int64 indices beside the output, returned or not, so the
    output must fit torch's storage limit at 8 bytes an element."""
    if prod(output) * 8 >= INT64:
        raise ShapeError(
            "output",
            f"output must have fewer than {INT64 // 8:,} elements ({layer} also "
            "builds int64 indices of its shape, even without return_indices), got "
            + fmt_shape(output),
        )


def _typed(options: dict[str, Any]) -> dict[str, Any]:
    """torch's arguments (by their names) checked for the types torch takes."""
    typed = dict(options)
    for name in ("padding", "dilation"):
        typed[name] = as_int_or_tuple(name, options[name])
    for name in ("kernel_size", "stride"):  # None: adaptive, or stride = kernel
        if options[name] is not None:
            typed[name] = as_int_or_tuple(name, options[name])
    if typed["stride"] == ():  # torch's C++ ops read no stride as kernel_size
        typed["stride"] = None
    for name in ("ceil_mode", "count_include_pad", "return_indices"):
        typed[name] = as_flag(name, options[name])
    typed["divisor_override"] = as_int(
        "divisor_override", options["divisor_override"], none=True
    )
    if options["norm_type"] is not None:
        typed["norm_type"] = as_number("norm_type", options["norm_type"])
    size = options["output_size"]
    if size is not None:
        typed["output_size"] = (
            as_int("output_size", size)
            if isinstance(size, int)
            else as_shape("output_size", size, none=True)
        )
    return typed


def needs(kind: PoolKind | str) -> int:
    """How many of the first torch_args the class cannot do without."""
    return sum(name in NEEDS for name in TAKES[_kind(kind)])


def _kind(kind: PoolKind | str) -> PoolKind:
    try:
        return PoolKind(kind)
    except ValueError:
        raise fail(
            "kind", "one of " + ", ".join(k.value for k in PoolKind), repr(kind)
        ) from None


def torch_args(kind: PoolKind | str, dims: int) -> tuple[str, ...]:
    """The keyword arguments of the torch class; AvgPool1d lacks divisor_override."""
    kind = _kind(kind)
    if kind is PoolKind.avg and dims == 1:
        return TAKES[kind][:-1]
    return TAKES[kind]


def _check_taken(takes: tuple[str, ...], layer: str, options: dict[str, Any]) -> None:
    """Options the torch class has no argument for must stay at their defaults."""
    for name, value in options.items():
        default = DEFAULTS[name]
        if name in takes and name in NEEDS and value is None:
            raise fail(name, f"given for {layer}", None)
        if name not in takes and not _is_default(value, default):
            raise fail(
                name, f"left at {default} ({layer} takes no {name})", _show(value)
            )


def _is_default(value: Any, default: Any) -> bool:
    if isinstance(value, (tuple, list)):
        return default is not None and all(v == default for v in value)
    return value is default if default is None else value == default


def _show(value: Any) -> str:
    return fmt_shape(value) if isinstance(value, (tuple, list)) else repr(value)


# Max, average and power-average pooling: a window slides over the input.
def _window(kind, layer, dims, input_shape, options):
    kernel, stride, padding, dilation = _window_options(kind, layer, dims, options)
    batched = _check_rank(layer, input_shape, dims)
    _check_window(options, kernel, padding)
    _check_empty(input_shape, 1 if batched else 0, layer)
    spatial = input_shape[-dims:]
    if _avg3d(kind, dims, options) and any(x < k for x, k in zip(spatial, kernel)):
        raise fail(
            "input",
            f"at least kernel_size {fmt_shape(kernel)} in every "
            f"spatial dim for {layer} (padding aside)",
            fmt_shape(input_shape),
        )

    out_spatial, lines = _window_sizes(
        kind, spatial, kernel, stride, padding, dilation, options["ceil_mode"]
    )
    if kind is PoolKind.lp and options["norm_type"] == 0:
        # torch fails only here, on the division by zero after the pooling
        raise fail("norm_type", "nonzero (the output is raised to 1/norm_type)", 0)
    params = _window_params(kind, dims, options, kernel, stride, padding, dilation)
    return params, out_spatial, lines


def _check_window(options: dict[str, Any], kernel, padding) -> None:
    """The checks of torch's pool shape checks that do not involve the input."""
    for name in ("kernel_size", "stride", "dilation"):
        if options[name] is not None:  # stride=None is kernel_size
            check_positive(name, options[name])
    check_non_negative("padding", options["padding"])
    # torch also checks padding against half the dilated kernel, which is weaker
    for i, (k, p) in enumerate(zip(kernel, padding)):
        if p > k // 2:
            raise fail(
                "padding",
                f"at most half of kernel_size, {k}//2 = {k // 2} in spatial dim {i}",
                p,
            )
    if options["divisor_override"] == 0:
        raise fail("divisor_override", "nonzero (it divides each window sum)", 0)


def _window_options(kind, layer, dims, options):
    """Per-dim tuples of kernel_size, stride, padding and dilation."""
    if kind is PoolKind.lp:
        _check_lp_kernel(layer, dims, options["kernel_size"], options["norm_type"])
    kernel = spread(options["kernel_size"], dims, "kernel_size")
    stride = options["stride"]
    stride = kernel if stride is None else spread(stride, dims, "stride")
    return (
        kernel,
        stride,
        spread(options["padding"], dims, "padding"),
        spread(options["dilation"], dims, "dilation"),
    )


def _check_lp_kernel(layer: str, dims: int, kernel_size, norm_type) -> None:
    """lp_pool's own Python code is stricter about kernel_size than the C++ ops."""
    if dims == 1 and not isinf(norm_type) and not isinstance(kernel_size, int):
        # lp_pool1d multiplies the window average by kernel_size
        raise fail(
            "kernel_size",
            f"an int for {layer} with a finite norm_type",
            _show(kernel_size),
        )
    if dims > 1 and _length(kernel_size) not in (None, dims):
        # lp_pool2d/3d unpack kernel_size into one name per dim
        raise fail(
            "kernel_size", f"an int or {dims} values for {layer}", _show(kernel_size)
        )


def _length(value: Any) -> int | None:
    return len(value) if isinstance(value, (tuple, list)) else None


def _avg3d(kind: PoolKind, dims: int, options: dict[str, Any]) -> bool:
    """avg_pool3d, and LPPool3d which calls it, want the window inside the input."""
    if kind is PoolKind.lp:
        return dims == 3 and not isinf(options["norm_type"])
    return kind is PoolKind.avg and dims == 3


def _window_sizes(kind, spatial, kernel, stride, padding, dilation, ceil_mode):
    """Output sizes, as torch's pooling_output_shape computes them, and the sums."""
    outs, lines = [], []
    for i, (x, k, s, p, d) in enumerate(
        zip(spatial, kernel, stride, padding, dilation)
    ):
        pad, pad_f = (
            ("", "") if kind is PoolKind.lp else (f" + 2*{p}", f" + 2*padding[{i}]")
        )
        span, span_f = (
            (f"{d}*({k}-1) - 1", f"dilation[{i}]*(kernel_size[{i}]-1) - 1")
            if kind is PoolKind.max
            else (f"{k}", f"kernel_size[{i}]")
        )
        text = f"(({x}{pad} - {span})/{s} + 1)"
        formula = f"((X_in{pad_f} - {span_f})/stride[{i}] + 1)"
        out = (x + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
        # a window may hang over the right edge, but must start before it
        late = ceil_mode and (out - 1) * s >= x + p
        out -= late
        rounding = "ceil" if ceil_mode else "floor"
        text = f"{rounding}{text}{' - 1' if late else ''}"
        if out < 1:
            raise _too_small(f"{text} = {out}", i)
        note = "the last window would start in the right padding" if late else ""
        outs.append(out)
        lines.append((f"{rounding}{formula}", text, out, note))
    return tuple(outs), lines


def _too_small(line: str, i: int) -> ShapeError:
    return ShapeError(
        "kernel_size",
        "kernel_size must leave an output size of at least 1 (Output size is too "
        f"small), got {line} in spatial dim {i}",
    )


def _window_params(kind, dims, options, kernel, stride, padding, dilation):
    """The constructor's keyword arguments, as torch names them."""
    per_dim = {
        "kernel_size": kernel,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
    }
    if kind is PoolKind.lp and dims == 1:
        per_dim["kernel_size"] = kernel[0]  # see _check_lp_kernel
    return {n: per_dim.get(n, options.get(n)) for n in torch_args(kind, dims)}


# Adaptive pooling: the output size is given and the windows adapt to it.
# Not modelled: when every output size is 1, adaptive_avg_pool takes a mean over
# the last dims instead, skipping its checks, so torch also accepts inputs of
# other ranks or with empty dims there; shapecalc keeps to the documented rules.
def _adaptive(kind, layer, dims, input_shape, options):
    sizes = _output_size(options["output_size"], dims, layer)
    batched = _check_rank(layer, input_shape, dims)
    if any(o is not None and o < 0 for o in sizes):
        raise fail("output_size", "made of sizes >= 0 or None", _show(sizes))
    _check_empty(input_shape, _may_be_empty(kind, dims, batched), layer)

    spatial = input_shape[-dims:]
    out_spatial = tuple(x if o is None else o for o, x in zip(sizes, spatial))
    lines = [
        (f"output_size[{i}]", str(o), o, "")
        if o is not None
        else ("X_in", str(x), x, f"output_size[{i}] is None")
        for i, (o, x) in enumerate(zip(sizes, spatial))
    ]
    params = {"output_size": sizes}
    if kind is PoolKind.adaptive_max:
        params["return_indices"] = options["return_indices"]
    return params, out_spatial, lines


def _output_size(output_size, dims: int, layer: str) -> tuple[int | None, ...]:
    if isinstance(output_size, int):
        return (output_size,) * dims
    sizes = tuple(output_size)
    if len(sizes) != dims:
        raise fail(
            "output_size",
            f"one int or {dims} values (one per spatial dim) for {layer}",
            _show(sizes),
        )
    if dims == 1 and None in sizes:
        # only the 2d and 3d functionals swap None for the input size
        raise fail("output_size", f"an int for {layer}", _show(sizes))
    return sizes


def _may_be_empty(kind: PoolKind, dims: int, batched: bool) -> int:
    """How many leading dims torch lets be 0: it checks the adaptive ones unevenly.

    adaptive_avg_pool1d/2d check only the spatial dims; adaptive_max_pool and
    adaptive_avg_pool3d check every dim but the first, even when it is C.
    """
    if kind is PoolKind.adaptive_avg and dims < 3:
        return 2 if batched else 1
    return 1


def _check_rank(layer: str, input_shape: tuple[int, ...], dims: int) -> bool:
    if len(input_shape) not in (dims + 1, dims + 2):
        raise fail(
            "input",
            f"{dims + 1}-D (unbatched) or {dims + 2}-D (batched) for {layer}",
            fmt_shape(input_shape),
        )
    if any(x < 0 for x in input_shape):
        raise fail("input", "made of sizes >= 0", fmt_shape(input_shape))
    return len(input_shape) == dims + 2


def _check_empty(input_shape: tuple[int, ...], lead: int, layer: str) -> None:
    """Only the first ``lead`` dims may be 0 (a batch of none is still a batch)."""
    if 0 in input_shape[lead:]:
        what = ("every dim", "every dim but the first", "every dim but N and C")[lead]
        raise fail("input", f"non-empty in {what} for {layer}", fmt_shape(input_shape))


def _result(layer, params, input_shape, out_spatial, lines, with_indices):
    dims = len(out_spatial)
    batched = len(input_shape) == dims + 2
    lead = input_shape[: len(input_shape) - dims]
    names = ("N", "C") if batched else ("C",)
    n = "N, " if batched else ""
    sym = SPATIAL[dims]
    in_f = ", ".join(f"{s}_in" for s in sym)
    out_f = f"({n}C, " + ", ".join(f"{s}_out" for s in sym) + ")"
    rows = [
        Tensor("input", input_shape, f"({n}C, {in_f})", "input"),
        Tensor("output", lead + out_spatial, out_f, "output"),
    ]
    if with_indices:
        rows.append(Tensor("indices", lead + out_spatial, out_f, "output"))
    symbols = tuple(zip(names, lead))
    steps = tuple(
        Step(f"{s}_out", formula.replace("X_in", f"{s}_in"), text, value, note)
        for s, (formula, text, value, note) in zip(sym, lines)
    )
    return LayerResult(
        layer=layer,
        params=params,
        tensors=tuple(rows),
        symbols=symbols,
        parameters=0,
        weights=(),
        steps=steps,
    )

"""Pooling: readable cases, then random configurations against torch."""

import math

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from shapecalc import ShapeError
from shapecalc.layers.pool import PoolKind, infer_dims, pool
from tests.conftest import TORCH, needs_torch, torch_outcome

CASES = [
    # (kind, args, input, output)
    (
        "max",
        dict(kernel_size=(3, 3), stride=2, padding=1),
        (8, 3, 32, 32),
        (8, 3, 16, 16),
    ),
    (
        "max",
        dict(kernel_size=3, stride=2, padding=1, dilation=2, dims=2),
        (8, 3, 32, 32),
        (8, 3, 15, 15),
    ),
    # ceil_mode adds a window over the right edge, but not one that would start
    # in the right padding: ceil(6/3 + 1) = 3 windows, the third starting at 6
    (
        "max",
        dict(kernel_size=2, stride=3, padding=1, ceil_mode=True, dims=1),
        (1, 1, 5),
        (1, 1, 2),
    ),
    ("max", dict(kernel_size=3, stride=2, ceil_mode=True, dims=1), (4, 2), (4, 1)),
    ("avg", dict(kernel_size=2, dims=1), (0, 3, 9), (0, 3, 4)),
    (
        "avg",
        dict(kernel_size=(3, 1), stride=1, padding=(1, 0), divisor_override=2),
        (3, 9, 9),
        (3, 9, 9),
    ),
    (
        "avg",
        dict(kernel_size=(2, 2, 2), ceil_mode=True),
        (2, 4, 5, 5, 5),
        (2, 4, 3, 3, 3),
    ),
    ("lp", dict(norm_type=2, kernel_size=3), (3, 10), (3, 3)),
    (
        "lp",
        dict(norm_type=1.5, kernel_size=(2, 3), stride=(2, 1)),
        (1, 2, 8, 8),
        (1, 2, 4, 6),
    ),
    (
        "lp",
        dict(norm_type=math.inf, kernel_size=3, stride=2, ceil_mode=True, dims=3),
        (1, 2, 2, 2),
        (1, 1, 1, 1),
    ),
    ("adaptive-avg", dict(output_size=(7, 7)), (8, 512, 14, 14), (8, 512, 7, 7)),
    ("adaptive-avg", dict(output_size=(None, 4)), (3, 10, 12), (3, 10, 4)),
    ("adaptive-avg", dict(output_size=0, dims=1), (2, 5), (2, 0)),
    ("adaptive-max", dict(output_size=(2, 3, 4)), (1, 2, 5, 5, 5), (1, 2, 2, 3, 4)),
    ("adaptive-max", dict(output_size=6, dims=1), (1, 3, 2), (1, 3, 6)),
]


@pytest.mark.parametrize("kind, args, x, out", CASES)
def test_cases(kind, args, x, out):
    result = pool(x, kind, **args)
    assert result.shapes["output"] == out
    assert (result.parameters, result.weights) == (0, ())


@needs_torch
@pytest.mark.parametrize("kind, args, x, out", CASES)
def test_params_build_the_torch_module(kind, args, x, out):
    result = pool(x, kind, **args)
    module = getattr(TORCH.nn, result.layer)(**result.params)
    assert tuple(module(TORCH.zeros(x)).shape) == out


def test_max_returns_indices_shaped_like_the_output():
    result = pool((2, 3, 8), "max", kernel_size=2, return_indices=True, dims=1)
    assert [(t.name, t.shape, t.role) for t in result.tensors] == [
        ("input", (2, 3, 8), "input"),
        ("output", (2, 3, 4), "output"),
        ("indices", (2, 3, 4), "output"),
    ]
    assert result.params == dict(
        kernel_size=(2,),
        stride=(2,),
        padding=(0,),
        dilation=(1,),
        return_indices=True,
        ceil_mode=False,
    )


@pytest.mark.parametrize(
    "kind, args, x, params",
    [
        (
            "avg",
            dict(kernel_size=3, dims=1),
            (2, 9),
            dict(
                kernel_size=(3,),
                stride=(3,),
                padding=(0,),
                ceil_mode=False,
                count_include_pad=True,
            ),
        ),
        (
            "lp",
            dict(kernel_size=3, norm_type=2, stride=(2,)),
            (2, 9),
            dict(norm_type=2, kernel_size=3, stride=(2,), ceil_mode=False),
        ),
        (
            "adaptive-max",
            dict(output_size=(None, 2)),
            (1, 4, 4),
            dict(output_size=(None, 2), return_indices=False),
        ),
        (
            "adaptive-avg",
            dict(output_size=3, dims=3),
            (1, 4, 4, 4),
            dict(output_size=(3, 3, 3)),
        ),
    ],
)
def test_params_are_the_constructor_arguments(kind, args, x, params):
    assert pool(x, kind, **args).params == params


@pytest.mark.parametrize(
    "kind, args, x, symbols, steps",
    [
        (
            "max",
            dict(kernel_size=3, stride=2, padding=1, dilation=2, dims=2),
            (8, 3, 32, 32),
            {"N": 8, "C": 3},
            {"H_out": ("floor((32 + 2*1 - 2*(3-1) - 1)/2 + 1)", 15, "")},
        ),
        (
            "avg",
            dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, dims=1),
            (3, 10),
            {"C": 3},
            {"L_out": ("ceil((10 + 2*1 - 3)/2 + 1)", 6, "")},
        ),
        (
            "max",
            dict(kernel_size=2, stride=3, padding=1, ceil_mode=True, dims=1),
            (1, 5),
            {"C": 1},
            {
                "L_out": (
                    "ceil((5 + 2*1 - 1*(2-1) - 1)/3 + 1) - 1",
                    2,
                    "the last window would start in the right padding",
                )
            },
        ),
        (
            "lp",
            dict(kernel_size=3, norm_type=2),
            (3, 10),
            {"C": 3},
            {"L_out": ("floor((10 - 3)/3 + 1)", 3, "")},
        ),
        (
            "adaptive-avg",
            dict(output_size=(7, None)),
            (3, 32, 20),
            {"C": 3},
            {"H_out": ("7", 7, ""), "W_out": ("20", 20, "output_size[1] is None")},
        ),
    ],
)
def test_formula_lines_show_the_arithmetic(kind, args, x, symbols, steps):
    result = pool(x, kind, **args)
    assert dict(result.symbols) == symbols
    found = {s.name: (s.arithmetic, s.value, s.note) for s in result.steps}
    assert {k: found[k] for k in steps} == steps


def test_explained_formula_names_torch_arguments():
    (step,) = pool((1, 10), "max", kernel_size=3, stride=2, padding=1).steps
    assert step.formula == (
        "floor((L_in + 2*padding[0] - dilation[0]*(kernel_size[0]-1) - 1)"
        "/stride[0] + 1)"
    )


REJECTED = [
    # (kind, args, input, param, message)
    (
        "max",
        dict(kernel_size=3, padding=2, dims=2),
        (1, 3, 8, 8),
        "padding",
        "padding must be at most half of kernel_size, 3//2 = 1 in spatial dim 0, got 2",
    ),
    # the dilated kernel spans 4, but torch still halves kernel_size itself
    (
        "max",
        dict(kernel_size=2, padding=2, dilation=3, dims=1),
        (1, 3, 9),
        "padding",
        "padding must be at most half of kernel_size, 2//2 = 1 in spatial dim 0, got 2",
    ),
    (
        "max",
        dict(kernel_size=(5, 2)),
        (1, 3, 4, 4),
        "kernel_size",
        "kernel_size must leave an output size of at least 1 (Output size is too "
        "small), got floor((4 + 2*0 - 1*(5-1) - 1)/5 + 1) = 0 in spatial dim 0",
    ),
    (
        "max",
        dict(kernel_size=3, stride=0, dims=2),
        (1, 3, 8, 8),
        "stride",
        "stride must be greater than zero, got 0",
    ),
    (
        "max",
        dict(kernel_size=(3, 3), dilation=(1, 0)),
        (1, 3, 8, 8),
        "dilation",
        "dilation must be greater than zero, got (1, 0)",
    ),
    (
        "max",
        dict(kernel_size=3, padding=-1, dims=1),
        (1, 3, 8),
        "padding",
        "padding must be zero or greater, got -1",
    ),
    (
        "max",
        dict(kernel_size=2, dims=2),
        (0, 8, 8),
        "input",
        "input must be non-empty in every dim for MaxPool2d, got (0, 8, 8)",
    ),
    (
        "max",
        dict(kernel_size=2, dims=2),
        (1, 0, 8, 8),
        "input",
        "input must be non-empty in every dim but the first for MaxPool2d, got "
        "(1, 0, 8, 8)",
    ),
    (
        "max",
        dict(kernel_size=(2, 2)),
        (1, 1, 3, 8, 8),
        "input",
        "input must be 3-D (unbatched) or 4-D (batched) for MaxPool2d, got "
        "(1, 1, 3, 8, 8)",
    ),
    (
        "avg",
        dict(kernel_size=3, divisor_override=0, dims=2),
        (1, 3, 8, 8),
        "divisor_override",
        "divisor_override must be nonzero (it divides each window sum), got 0",
    ),
    (
        "avg",
        dict(kernel_size=3, divisor_override=2, dims=1),
        (1, 3, 8),
        "divisor_override",
        "divisor_override must be left at None (AvgPool1d takes "
        "no divisor_override), got 2",
    ),
    (
        "avg",
        dict(kernel_size=3, padding=1, dims=3),
        (1, 3, 2, 8, 8),
        "input",
        "input must be at least kernel_size (3, 3, 3) in every spatial dim for "
        "AvgPool3d (padding aside), got (1, 3, 2, 8, 8)",
    ),
    (
        "avg",
        dict(kernel_size=3, dilation=2, dims=2),
        (1, 3, 8, 8),
        "dilation",
        "dilation must be left at 1 (AvgPool2d takes no dilation), got 2",
    ),
    (
        "lp",
        dict(kernel_size=3, padding=1, norm_type=2, dims=2),
        (1, 3, 8, 8),
        "padding",
        "padding must be left at 0 (LPPool2d takes no padding), got 1",
    ),
    (
        "lp",
        dict(kernel_size=3, dims=2),
        (1, 3, 8, 8),
        "norm_type",
        "norm_type must be given for LPPool2d, got None",
    ),
    (
        "lp",
        dict(kernel_size=3, norm_type=0, dims=2),
        (1, 3, 8, 8),
        "norm_type",
        "norm_type must be nonzero (the output is raised to 1/norm_type), got 0",
    ),
    (
        "lp",
        dict(kernel_size=(3,), norm_type=2),
        (1, 3, 8),
        "kernel_size",
        "kernel_size must be an int for LPPool1d with a finite norm_type, got (3,)",
    ),
    (
        "lp",
        dict(kernel_size=(3,), norm_type=2, dims=2),
        (1, 3, 8, 8),
        "kernel_size",
        "kernel_size must be an int or 2 values for LPPool2d, got (3,)",
    ),
    (
        "adaptive-avg",
        dict(output_size=(7, 7), kernel_size=2),
        (1, 3, 8, 8),
        "kernel_size",
        "kernel_size must be left at None (AdaptiveAvgPool2d takes no "
        "kernel_size), got 2",
    ),
    (
        "adaptive-avg",
        dict(output_size=(7, -1)),
        (1, 3, 8, 8),
        "output_size",
        "output_size must be made of sizes >= 0 or None, got (7, -1)",
    ),
    (
        "adaptive-max",
        dict(output_size=(7, 7), dims=3),
        (1, 3, 8, 8),
        "output_size",
        "output_size must be one int or 3 values (one per spatial dim) for "
        "AdaptiveMaxPool3d, got (7, 7)",
    ),
    (
        "adaptive-max",
        dict(output_size=(None,)),
        (1, 3, 8),
        "output_size",
        "output_size must be an int for AdaptiveMaxPool1d, got (None,)",
    ),
    (
        "adaptive-max",
        dict(output_size=(2, 2)),
        (1, 0, 8, 8),
        "input",
        "input must be non-empty in every dim but the first for AdaptiveMaxPool2d, "
        "got (1, 0, 8, 8)",
    ),
    (
        "adaptive-avg",
        dict(output_size=(2, 2)),
        (1, 3, 0, 8),
        "input",
        "input must be non-empty in every dim but N and C for AdaptiveAvgPool2d, got "
        "(1, 3, 0, 8)",
    ),
    (
        "adaptive-avg",
        dict(output_size=2, ceil_mode=True, dims=2),
        (1, 3, 8, 8),
        "ceil_mode",
        "ceil_mode must be left at False (AdaptiveAvgPool2d takes no "
        "ceil_mode), got True",
    ),
    (
        "adaptive-max",
        dict(output_size=None, dims=2),
        (1, 3, 8, 8),
        "output_size",
        "output_size must be given for AdaptiveMaxPool2d, got None",
    ),
    (
        "min",
        dict(kernel_size=2, dims=2),
        (1, 3, 8, 8),
        "kind",
        "kind must be one of max, avg, lp, adaptive-max, adaptive-avg, got 'min'",
    ),
]


@pytest.mark.parametrize("kind, args, x, param, message", REJECTED)
def test_rejected(kind, args, x, param, message):
    with pytest.raises(ShapeError) as info:
        pool(x, kind, **args)
    assert (info.value.param, str(info.value)) == (param, message)


@pytest.mark.parametrize(
    "x, options, dims",
    [
        ((3, 100), (), 1),
        ((8, 3, 16, 16, 16), (), 3),
        ((8, 3, 32), (("kernel_size", (3,)),), 1),
        ((3, 32, 32), (("output_size", (None, 7)),), 2),
        # torch spreads a one-value tuple, so it does not vote against the others
        ((8, 3, 32, 32), (("kernel_size", (3,)), ("stride", (1, 2))), 2),
    ],
)
def test_infer_dims(x, options, dims):
    assert infer_dims(x, *options) == dims


@pytest.mark.parametrize(
    "x, options, param, message",
    [
        (
            (8, 3, 32),
            (),
            "dims",
            "dims is ambiguous for input (8, 3, 32): it could be "
            "1-D (batched) or 2-D (unbatched); give dims (--dims)",
        ),
        (
            (8, 3, 32, 32),
            (),
            "dims",
            "dims is ambiguous for input (8, 3, 32, 32): it "
            "could be 2-D (batched) or 3-D (unbatched); give dims (--dims)",
        ),
        (
            (8, 3, 32),
            (("kernel_size", (3, 3)), ("stride", (1, 1, 1))),
            "dims",
            "tuple-valued options disagree on the number of spatial dims: kernel_size "
            "has 2, stride has 3",
        ),
        (
            (8,),
            (),
            "input",
            "input must be of rank 2 to 5, (C, *spatial) or (N, C, *spatial), got (8,)",
        ),
    ],
)
def test_infer_dims_asks_when_ambiguous(x, options, param, message):
    with pytest.raises(ShapeError) as info:
        infer_dims(x, *options)
    assert (info.value.param, str(info.value)) == (param, message)


def test_kinds_are_the_cli_choices():
    assert [k.value for k in PoolKind] == [
        "max",
        "avg",
        "lp",
        "adaptive-max",
        "adaptive-avg",
    ]


# Differential tests: hypothesis draws configurations, valid and invalid alike,
# and torch decides. Sizes stay small so that each draw runs in microseconds.
def mostly(valid, invalid):
    """15 draws in 16 from ``valid``: a pool has many fields that can be wrong."""
    return st.integers(0, 15).flatmap(lambda i: invalid if i == 0 else valid)


@st.composite
def per_dim(draw, dims, valid, invalid):
    """An int, a tuple with one value per dim, or (torch spreads it) one value."""
    values = mostly(st.integers(*valid), st.integers(*invalid))
    form = draw(st.sampled_from(["int", "int", "tuple", "tuple", "one"]))
    if form == "int":
        return draw(values)
    return tuple(draw(values) for _ in range(dims if form == "tuple" else 1))


@st.composite
def inputs(draw, dims, sizes):
    """(N, C, *spatial) or (C, *spatial); now and then empty or of a wrong rank."""
    batch = draw(mostly(st.integers(1, 2), st.just(0)))
    channels = draw(mostly(st.integers(1, 3), st.just(0)))
    spatial = tuple(draw(mostly(sizes, st.just(0))) for _ in range(dims))
    x = ((batch,) if draw(st.booleans()) else ()) + (channels,) + spatial
    wrong = draw(st.integers(0, 19))
    return x + (2,) if wrong == 0 else x[1:] if wrong == 1 else x


@st.composite
def window_configs(draw):
    kind, dims = draw(st.sampled_from(["max", "avg", "lp"])), draw(st.integers(1, 3))
    args = dict(
        kernel_size=draw(per_dim(dims, (1, 4), (-1, 0))), ceil_mode=draw(st.booleans())
    )
    if draw(st.booleans()):
        args["stride"] = draw(per_dim(dims, (1, 3), (-1, 0)))
    if kind != "lp":
        args["padding"] = draw(per_dim(dims, (0, 1), (-1, 3)))
    if kind == "max":
        args["dilation"] = draw(per_dim(dims, (1, 2), (-1, 0)))
        args["return_indices"] = draw(st.booleans())
    if kind == "avg":
        args["count_include_pad"] = draw(st.booleans())
        if dims > 1:
            args["divisor_override"] = draw(
                mostly(st.sampled_from([None, 1, 3, -2]), st.just(0))
            )
    if kind == "lp":
        args["norm_type"] = draw(
            mostly(st.sampled_from([1, 2, 1.5, -1, math.inf, -math.inf]), st.just(0))
        )
    return kind, dims, args, draw(inputs(dims, st.integers(1, 9)))


@st.composite
def adaptive_configs(draw):
    kind = draw(st.sampled_from(["adaptive-max", "adaptive-avg"]))
    dims = draw(st.integers(1, 3))
    # None keeps the input's size, but only in 2d and 3d
    size = st.integers(0, 5) | st.none() if dims > 1 else st.integers(0, 5)
    size = mostly(size, st.just(-1) | st.none())
    if draw(st.booleans()):
        output_size = draw(mostly(st.integers(0, 5), st.just(-1)))
    else:
        n = draw(mostly(st.just(dims), st.integers(1, 3)))
        output_size = tuple(draw(size) for _ in range(n))
    args = dict(output_size=output_size)
    if kind == "adaptive-max":
        args["return_indices"] = draw(st.booleans())
    return kind, dims, args, draw(inputs(dims, st.integers(1, 6)))


def _torch_pool(kind, dims, args, x):
    name = {
        "max": "MaxPool",
        "avg": "AvgPool",
        "lp": "LPPool",
        "adaptive-max": "AdaptiveMaxPool",
        "adaptive-avg": "AdaptiveAvgPool",
    }
    cls = getattr(TORCH.nn, f"{name[kind]}{dims}d")
    return torch_outcome(lambda: cls(**args), lambda m: m(TORCH.zeros(x)))


def _ours(kind, dims, args, x):
    try:
        return pool(x, kind, dims=dims, **args)
    except ShapeError as exc:
        return exc


def _check_agreement(ours, status, shapes, strict):
    if not strict and isinstance(ours, ShapeError) and ours.param == "input":
        return
    assert isinstance(ours, ShapeError) == (status == "error"), (ours, shapes)
    if status == "ok":
        assert [t.shape for t in ours.tensors if t.role == "output"] == shapes
        # the recorded constructor arguments build a module that agrees
        cls, x = getattr(TORCH.nn, ours.layer), TORCH.zeros(ours.shapes["input"])
        again = torch_outcome(lambda: cls(**ours.params), lambda m: m(x))
        assert again[:2] == ("ok", shapes)


@needs_torch
@given(window_configs())
def test_max_avg_lp_agree_with_torch(config):
    kind = config[0]
    ours = _ours(*config)
    status, shapes, _ = _torch_pool(*config)
    event(f"{kind}: torch {status}")
    _check_agreement(ours, status, shapes, strict=True)


@needs_torch
@given(adaptive_configs())
def test_adaptive_agrees_with_torch(config):
    kind, dims = config[:2]
    ours = _ours(*config)
    status, shapes, _ = _torch_pool(*config)
    # adaptive_avg_pool with an output of 1 in every dim takes a shortcut, a mean
    # over the last dims, that skips its checks on the input's rank and on empty
    # dims. shapecalc applies the documented rules (see _adaptive in pool.py), so
    # here it may reject an input that torch lets through, never the reverse.
    strict = not (
        kind == "adaptive-avg" and status == "ok" and set(shapes[0][-dims:]) == {1}
    )
    lenient = not strict and isinstance(ours, ShapeError)
    event(
        f"{kind}: torch {status}" + (", shapecalc error (lenient)" if lenient else "")
    )
    _check_agreement(ours, status, shapes, strict)

"""Convolutions: readable cases, then random configurations against torch."""

import pytest
from hypothesis import assume, event, given
from hypothesis import strategies as st

from shapecalc import ShapeError, conv
from shapecalc.layers.conv import infer_dims
from tests.conftest import TORCH, needs_torch, torch_outcome

CASES = [
    # (args, input, output, weight, parameters)
    (
        dict(in_channels=3, out_channels=16, kernel_size=3, stride=2, padding=1),
        (8, 3, 224, 224),
        (8, 16, 112, 112),
        (16, 3, 3, 3),
        448,
    ),
    (
        dict(
            in_channels=4,
            out_channels=6,
            kernel_size=(3, 1),
            padding="same",
            dilation=2,
            groups=2,
            bias=False,
            padding_mode="reflect",
        ),
        (4, 9, 7),
        (6, 9, 7),
        (6, 2, 3, 1),
        36,
    ),
    (
        dict(in_channels=2, out_channels=3, kernel_size=5),
        (1, 2, 5),
        (1, 3, 1),
        (3, 2, 5),
        33,
    ),
    (
        dict(
            in_channels=4,
            out_channels=2,
            kernel_size=3,
            stride=2,
            padding=1,
            output_padding=1,
            transposed=True,
            groups=2,
        ),
        (1, 4, 8, 8, 8),
        (1, 2, 16, 16, 16),
        (4, 1, 3, 3, 3),
        110,
    ),
    (
        dict(
            in_channels=3,
            out_channels=3,
            kernel_size=3,
            stride=2,
            transposed=True,
            output_size=(8, 8),
        ),
        (1, 3, 3, 3),
        (1, 3, 8, 8),
        (3, 3, 3, 3),
        84,
    ),
    # torch's C++ op reads a one-value stride in every dim
    (
        dict(in_channels=2, out_channels=4, kernel_size=3, stride=(2,)),
        (1, 2, 6, 6),
        (1, 4, 2, 2),
        (4, 2, 3, 3),
        76,
    ),
    # F.pad, used for reflect, pads only the last dim with a one-value padding
    (
        dict(
            in_channels=2,
            out_channels=4,
            kernel_size=3,
            padding=(1,),
            padding_mode="reflect",
        ),
        (2, 6, 6),
        (4, 4, 6),
        (4, 2, 3, 3),
        76,
    ),
]


@pytest.mark.parametrize("args, x, out, weight, parameters", CASES)
def test_cases(args, x, out, weight, parameters):
    result = conv(x, **args)
    assert (result.shapes["output"], result.shapes["weight"]) == (out, weight)
    assert result.parameters == parameters


@pytest.mark.parametrize(
    "args, x, step",
    [
        (
            dict(in_channels=3, out_channels=16, kernel_size=3, stride=2, padding=1),
            (8, 3, 224, 224),
            "H_out = floor((H_in + 2*padding[0] - dilation[0]*(kernel_size[0]-1) - 1)"
            "/stride[0] + 1) = floor((224 + 2*1 - 1*(3-1) - 1)/2 + 1) = 112",
        ),
        (
            dict(in_channels=2, out_channels=2, kernel_size=4, padding="same"),
            (2, 9),
            "L_out = floor((L_in + padding_left+padding_right - dilation[0]*"
            "(kernel_size[0]-1) - 1)/stride[0] + 1) = floor((9 + 1+2 - 1*(4-1) - 1)"
            "/1 + 1) = 9",
        ),
        (
            dict(
                in_channels=16,
                out_channels=3,
                kernel_size=3,
                stride=2,
                padding=1,
                output_padding=1,
                transposed=True,
            ),
            (8, 16, 7, 7),
            "H_out = (H_in-1)*stride[0] - 2*padding[0] + dilation[0]*(kernel_size[0]"
            "-1) + output_padding[0] + 1 = (7-1)*2 - 2*1 + 1*(3-1) + 1 + 1 = 14",
        ),
    ],
)
def test_steps_show_the_formula_and_the_arithmetic(args, x, step):
    assert str(conv(x, **args).steps[0]) == step


@pytest.mark.parametrize(
    "args, x, macs",
    [
        # every output element: C_in/groups * k*k multiply-adds; bias not counted
        (
            dict(in_channels=3, out_channels=16, kernel_size=3, stride=2, padding=1),
            (8, 3, 224, 224),
            8 * 16 * 112 * 112 * 3 * 3 * 3,
        ),
        (
            dict(in_channels=4, out_channels=6, kernel_size=(3, 1), groups=2),
            (4, 9, 7),
            6 * 7 * 7 * 2 * 3 * 1,
        ),
        # transposed: every input element meets C_out/groups * k taps
        (
            dict(
                in_channels=4, out_channels=2, kernel_size=3, stride=2, transposed=True
            ),
            (1, 4, 5),
            4 * 5 * 2 * 3,
        ),
    ],
)
def test_macs_by_hand(args, x, macs):
    assert conv(x, **args).macs == macs


REJECTED = [
    (
        dict(in_channels=2, out_channels=2, kernel_size=1, padding=2, transposed=True),
        (1, 2, 4),
        "padding",
        "padding must be small enough to leave an output, got (X_in-1)*stride - "
        "2*padding + dilation*(k-1) + output_padding + 1 = (4-1)*1 - 2*2 + "
        "1*(1-1) + 0 + 1 = 0 in spatial dim 0",
    ),
    (
        dict(
            in_channels=2,
            out_channels=4,
            kernel_size=3,
            padding=(1,),
            padding_mode="reflect",
        ),
        (1, 2, 6, 6),
        "padding",
        "padding must be 2 values for padding_mode='reflect' on a 4-D input "
        "(F.pad pads that many last dims), got (1,)",
    ),
    (
        dict(in_channels=2, out_channels=4, kernel_size=3.0),
        (1, 2, 6, 6),
        "kernel_size",
        "kernel_size must be an integer or a tuple of integers, got 3.0",
    ),
    (
        dict(in_channels=2, out_channels=4, kernel_size=3, output_padding=1),
        (1, 2, 6, 6),
        "output_padding",
        "output_padding must be left at 0 (Conv2d takes no output_padding), got (1, 1)",
    ),
    (
        dict(in_channels=3, out_channels=16, kernel_size=3, padding="same", stride=2),
        (1, 3, 8, 8),
        "stride",
        "stride must be 1 in every dim when padding='same', got (2, 2)",
    ),
    (
        dict(in_channels=3, out_channels=4, kernel_size=3, groups=2),
        (1, 3, 8),
        "in_channels",
        "in_channels must be divisible by groups=2, got 3",
    ),
    (
        dict(
            in_channels=2,
            out_channels=2,
            kernel_size=3,
            stride=1,
            output_padding=1,
            transposed=True,
        ),
        (1, 2, 8),
        "output_padding",
        "output_padding must be smaller than stride or dilation, in spatial dim 0 "
        "stride=1 and dilation=1, got 1",
    ),
    (
        dict(
            in_channels=2,
            out_channels=2,
            kernel_size=3,
            padding=4,
            padding_mode="reflect",
        ),
        (1, 2, 4),
        "padding",
        "padding must be smaller than the input size 4 in spatial dim 0 for "
        "padding_mode='reflect', got 4",
    ),
    (
        dict(in_channels=3, out_channels=4, kernel_size=(3, 3)),
        (1, 4, 8, 8),
        "input",
        "input must have 3 channels (in_channels) in dim 1 for Conv2d (2-D from "
        "kernel_size=(3, 3)), got (1, 4, 8, 8)",
    ),
    (
        dict(in_channels=3, out_channels=4, kernel_size=5),
        (3, 4, 8),
        "kernel_size",
        "kernel_size must fit the padded input, got dilation*(kernel_size-1)+1 = "
        "1*(5-1)+1 = 5 > input 4 + padding 0 = 4 in spatial dim 0",
    ),
    (
        dict(
            in_channels=3,
            out_channels=3,
            kernel_size=3,
            stride=2,
            transposed=True,
            output_size=(9, 9),
        ),
        (1, 3, 3, 3),
        "output_size",
        "output_size must be between [7, 7] and [8, 8] for this input, got [9, 9]",
    ),
    (
        dict(
            in_channels=3,
            out_channels=3,
            kernel_size=3,
            transposed=True,
            padding_mode="circular",
        ),
        (1, 3, 3, 3),
        "padding_mode",
        "padding_mode must be 'zeros' for ConvTranspose2d, got 'circular'",
    ),
]


@pytest.mark.parametrize("args, x, param, message", REJECTED)
def test_rejected(args, x, param, message):
    with pytest.raises(ShapeError) as info:
        conv(x, **args)
    assert (info.value.param, str(info.value)) == (param, message)


@pytest.mark.parametrize(
    "x, options, dims",
    [
        ((8, 3, 224, 224), (), 2),
        ((3, 224, 224), (), 2),
        ((8, 3, 100), (), 1),
        ((3, 16, 16, 16), (), 3),
        ((3, 3, 32), (("kernel_size", (3,)),), 1),
        ((3, 3, 32, 32), (("stride", (1, 2)),), 2),
    ],
)
def test_infer_dims(x, options, dims):
    assert infer_dims(x, 3, *options) == dims


@pytest.mark.parametrize(
    "x, options, message",
    [
        (
            (3, 3, 32),
            (),
            "dims is ambiguous for input (3, 3, 32) with in_channels=3: "
            "it could be 1-D (batched) or 2-D (unbatched); give dims (--dims)",
        ),
        (
            (3, 3, 32),
            (("kernel_size", (3,)), ("stride", (1, 1))),
            "tuple-valued options disagree on the number of spatial dims: kernel_size "
            "has 1, stride has 2",
        ),
    ],
)
def test_infer_dims_asks_when_ambiguous(x, options, message):
    with pytest.raises(
        ShapeError, match=f"^{message.replace('(', '.').replace(')', '.')}$"
    ):
        infer_dims(x, 3, *options)


# Differential tests: hypothesis draws configurations, valid and invalid alike,
# and torch decides.
def mostly(valid, invalid):
    """15 draws in 16 from ``valid``: a conv has many fields that can be wrong."""
    return st.integers(0, 15).flatmap(lambda i: invalid if i == 0 else valid)


@st.composite
def per_dim(draw, dims, valid, invalid):
    """An int for every dim, a tuple with one value per dim, or now and then a
    one-value tuple (torch's C++ ops spread it, F.pad does not)."""
    values = st.integers(*valid)
    values = mostly(values, st.integers(*invalid))
    form = draw(st.integers(0, 4))
    if form < 2:
        return draw(values)
    return tuple(draw(values) for _ in range(1 if form == 4 else dims))


@st.composite
def conv_configs(draw):
    dims, transposed = draw(st.integers(1, 3)), draw(st.booleans())
    groups = draw(mostly(st.integers(1, 3), st.integers(-1, 0)))
    g = max(groups, 1)
    in_c = draw(mostly(st.integers(1, 3).map(lambda n: n * g), st.integers(-1, 5)))
    # torch accepts in_channels=0 on a plain conv and returns an empty tensor
    # with 0 channels instead of out_channels; shapecalc rejects it (README).
    assume(in_c != 0)
    out_c = draw(mostly(st.integers(1, 3).map(lambda n: n * g), st.integers(-1, 5)))
    args = dict(
        in_channels=in_c,
        out_channels=out_c,
        groups=groups,
        kernel_size=draw(per_dim(dims, (1, 4), (-1, 0))),
        stride=draw(per_dim(dims, (1, 3), (-1, 0))),
        dilation=draw(per_dim(dims, (1, 3), (-1, 0))),
        bias=draw(st.booleans()),
    )
    padding = draw(per_dim(dims, (0, 3), (-2, -1)))
    if draw(st.integers(0, 5)) == 0:
        padding = draw(st.sampled_from(["same", "valid", "full"]))
    args["padding"] = padding
    if transposed:
        args["output_padding"] = draw(per_dim(dims, (0, 2), (-1, -1)))
    if draw(st.integers(0, 3)) == 0:
        args["padding_mode"] = draw(
            st.sampled_from(["reflect", "replicate", "circular", "zeros", "mirror"])
        )
    batch = draw(mostly(st.integers(1, 2), st.just(0)))
    spatial = tuple(draw(mostly(st.integers(1, 9), st.just(0))) for _ in range(dims))
    batched = draw(st.booleans())
    channels = draw(mostly(st.just(abs(in_c)), st.integers(0, 4)))
    x = ((batch,) if batched else ()) + (channels,) + spatial
    if draw(st.integers(0, 9)) == 0:
        x = x + (2,)
    output_size = None
    if transposed and draw(st.integers(0, 3)) == 0:
        output_size = tuple(draw(st.integers(1, 20)) for _ in range(dims))
    # torch skips some checks on an empty batch (dilation >= 1, output_padding
    # smaller than stride or dilation, spatial sizes > 0, a transposed output
    # > 0), and whether it rejects dilation=0 or a transposed output of size 0
    # depends on which CPU kernel it picks. shapecalc applies every rule always
    # (README, limitations), so here it may reject what torch lets through,
    # never the reverse.
    strict = not ((batched and batch == 0) or _below(args["dilation"], 1))
    return (dims, transposed, args, x, output_size), strict


def _below(value, low):
    return min(value if isinstance(value, tuple) else (value,)) < low


def _torch_conv(dims, transposed, args, x, output_size):
    cls = getattr(TORCH.nn, f"Conv{'Transpose' if transposed else ''}{dims}d")

    def run(module):
        if output_size is None:
            return module(TORCH.zeros(x))
        return module(TORCH.zeros(x), output_size=list(output_size))

    return torch_outcome(lambda: cls(**args), run)


@needs_torch
@given(conv_configs())
def test_conv_agrees_with_torch(drawn):
    config, strict = drawn
    dims, transposed, args, x, output_size = config
    try:
        ours = conv(
            x, dims=dims, transposed=transposed, output_size=output_size, **args
        )
    except ShapeError as exc:
        ours = exc
    status, shapes, module = _torch_conv(*config)
    strict = strict and not (status == "ok" and 0 in shapes[0][-dims:])
    event(f"torch: {status}" + ("" if strict else " (lenient)"))
    if not strict and isinstance(ours, ShapeError):
        return
    assert isinstance(ours, ShapeError) == (status == "error"), (ours, shapes)
    if status == "ok":
        assert ours.shapes["output"] == shapes[0]
        assert ours.parameters == sum(p.numel() for p in module.parameters())
        assert dict(ours.weights) == {
            n: tuple(p.shape) for n, p in module.named_parameters()
        }

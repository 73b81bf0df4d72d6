"""Shared pieces of the shape math: the error class, results, int-or-tuple values.

Nothing here imports torch, numpy or rich: this module is on the start-up path
of every query.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from math import prod
from typing import Any

INT64 = 2**63  # torch sizes are int64


class ShapeError(ValueError):
    """A configuration that torch rejects.

    ``param`` names the offending argument (torch's name), and the message reads
    "name must be rule, got value".
    """

    def __init__(self, param: str, message: str, steps: tuple[str, ...] = ()):
        if len(message) > 1000:  # a value as long as the input would drown the rule
            message = message[:600] + " ... " + message[-300:]
        super().__init__(message)
        self.param = param
        self.steps = steps


@dataclass(frozen=True, slots=True)
class Tensor:
    """One tensor of a layer: its row name, shape and symbolic formula.

    ``role`` is "input" (fed to forward), "state" (an optional forward argument),
    "output", or "param" (a weight or bias of the module).
    """

    name: str
    shape: tuple[int, ...]
    formula: str
    role: str

    @property
    def numel(self) -> int:
        return prod(self.shape)


@dataclass(frozen=True, slots=True)
class Step:
    """One number worked out: its formula, the user's numbers in it, the value.

    >>> str(Step("L_out", "L_in - 2", "10 - 2", 8))
    'L_out = L_in - 2 = 10 - 2 = 8'
    """

    name: str
    formula: str
    arithmetic: str
    value: int
    note: str = ""

    def __str__(self) -> str:
        note = f" ({self.note})" if self.note else ""
        return f"{self.name} = {self.formula} = {self.arithmetic} = {self.value}{note}"


@dataclass(frozen=True, slots=True)
class LayerResult:
    """Everything shapecalc computes for one layer and one input."""

    layer: str
    params: dict[str, Any]
    tensors: tuple[Tensor, ...]
    symbols: tuple[tuple[str, int], ...]
    parameters: int
    weights: tuple[tuple[str, tuple[int, ...]], ...]
    forward: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    steps: tuple[Step, ...] = ()
    macs: int = 0

    def __post_init__(self) -> None:
        """torch refuses a tensor whose bytes overflow int64, at any size."""
        # the weights first: torch allocates them in the constructor
        named = list(self.weights) + [(t.name, t.shape) for t in self.tensors]
        for name, shape in named:
            itemsize = 8 if name == "indices" else 4  # int64, else float32
            if prod(shape) >= INT64 // 8 and prod(shape) * itemsize >= INT64:
                raise ShapeError(
                    name,
                    f"{name} must have fewer than {INT64 // itemsize:,} elements "
                    f"(torch's storage size overflows int64), got "
                    f"{_shorter(fmt_shape(shape), 120)}",
                )

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {t.name: t.shape for t in self.tensors}

    def tensor(self, name: str) -> Tensor:
        return next(t for t in self.tensors if t.name == name)


class Dtype(str, enum.Enum):
    float32 = "float32"
    float16 = "float16"
    bfloat16 = "bfloat16"
    float64 = "float64"


DTYPE_BYTES = {Dtype.float32: 4, Dtype.float16: 2, Dtype.bfloat16: 2, Dtype.float64: 8}


def memory(result: LayerResult, dtype: Dtype | str = Dtype.float32) -> dict[str, int]:
    """Bytes of the inputs (states included), the outputs and the parameters.

    >>> r = LayerResult("X", {}, (Tensor("input", (2, 3), "", "input"),), (), 5, ())
    >>> memory(r, "float16")
    {'inputs': 12, 'outputs': 0, 'parameters': 10}
    """
    size = DTYPE_BYTES[Dtype(dtype)]
    totals = {"inputs": 0, "outputs": 0}
    for t in result.tensors:
        if t.role in ("input", "state"):
            totals["inputs"] += t.numel * size
        elif t.role == "output":
            totals["outputs"] += t.numel * size
    return totals | {"parameters": result.parameters * size}


def human_bytes(n: float) -> str:
    """``1.5 KiB`` style sizes.

    >>> human_bytes(1536), human_bytes(12), human_bytes(2**1001).endswith(" TiB")
    ('1.5 KiB', '12 B', True)
    """
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    power = 0
    while power < len(units) - 1 and n >= 1024 ** (power + 1):
        power += 1
    if power == 0:
        return f"{n:,.0f} B"
    if n > 2**1000:  # too big for a float: whole units
        return f"{n // 1024**power:,} {units[power]}"
    return f"{n / 1024**power:,.1f} {units[power]}"


def fail(param: str, rule: str, got: object) -> ShapeError:
    """The one message form: "param must be rule, got value"."""
    return ShapeError(param, f"{param} must be {rule}, got {got}")


def fmt_shape(shape: Iterable[int]) -> str:
    """A shape as Python writes a tuple: ``(8, 3)``, ``(5,)``, ``()``."""
    shape = tuple(shape)
    return repr(shape) if len(shape) == 1 else "(" + ", ".join(map(str, shape)) + ")"


def as_tuple(value: int | Sequence[int], n: int, param: str) -> tuple[int, ...]:
    """Expand an int to ``n`` copies; check a tuple has one value per dim.

    >>> as_tuple(3, 2, "kernel_size")
    (3, 3)
    >>> as_tuple((1, 2), 2, "stride")
    (1, 2)
    """
    if isinstance(value, int):
        return (value,) * n
    values = tuple(value)
    if len(values) != n:
        raise fail(param, f"one value or {n} values (one per spatial dim)", values)
    return values


def spread(value: int | Sequence[int], n: int, param: str) -> tuple[int, ...]:
    """Like as_tuple, but a one-value tuple also stands for every dim, as torch's
    C++ ops read stride, padding and dilation.

    >>> spread((2,), 3, "stride")
    (2, 2, 2)
    """
    if not isinstance(value, int) and len(value) == 1:
        value = value[0]
    return as_tuple(value, n, param)


def torch_form(value: int | Sequence[int], n: int) -> tuple[int, ...]:
    """What a module stores for an int-or-tuple argument (torch's _ntuple): an
    int repeated for every dim, a tuple as given."""
    return (value,) * n if isinstance(value, int) else tuple(value)


SPATIAL = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


def infer_dims(
    input_shape: Sequence[int],
    options: Iterable[tuple[str, Any]],
    channels: int | None = None,
    spread_ones: bool = False,
) -> int:
    """The number of spatial dims: from tuple-valued options, else the input.

    A rank-3 input may be (N, C, L) or (C, H, W), a rank-4 one (N, C, H, W) or
    (C, D, H, W): a known channel count can tell them apart. With
    ``spread_ones`` a one-value tuple casts no vote (torch's pooling ops
    spread it over every dim).

    >>> infer_dims((8, 3, 224, 224), [], channels=3)
    2
    """
    lengths = {
        name: len(v)
        for name, v in options
        if v is not None and not isinstance(v, (int, float, str))
    }
    votes = set(lengths.values())
    if spread_ones and len(votes) > 1:
        votes.discard(1)
    if len(votes) > 1:
        pairs = ", ".join(f"{k} has {v}" for k, v in lengths.items())
        raise ShapeError(
            "dims",
            f"tuple-valued options disagree on the number of spatial dims: {pairs}",
        )
    if votes:
        dims = votes.pop()
        if dims not in (1, 2, 3):
            name = next(k for k, v in lengths.items() if v == dims)
            raise ShapeError(
                name,
                f"{name} must have 1 to 3 values (one per spatial dim), got {dims}",
            )
        return dims
    return _dims_from_rank(tuple(input_shape), channels)


def _dims_from_rank(input_shape: tuple[int, ...], channels: int | None) -> int:
    rank = len(input_shape)
    by_rank = [d for d in (1, 2, 3) if rank in (d + 1, d + 2)]
    if not by_rank:
        raise fail(
            "input",
            "of rank 2 to 5, (C, *spatial) or (N, C, *spatial)",
            fmt_shape(input_shape),
        )
    by_channels = [d for d in by_rank if input_shape[rank - d - 1] == channels]
    for candidates in (by_channels, by_rank):
        if len(candidates) == 1:
            return candidates[0]
    if channels is not None and not by_channels:
        # neither reading has in_channels where it belongs: read the input as
        # batched, like torch's own message for the wrong channel count
        return rank - 2
    with_channels = f" with in_channels={channels}" if channels is not None else ""
    raise ShapeError(
        "dims",
        f"dims is ambiguous for input {fmt_shape(input_shape)}"
        f"{with_channels}: it could be {by_rank[0]}-D (batched) or "
        f"{by_rank[1]}-D (unbatched); give dims (--dims)",
    )


def each(convert: Callable[[str, Any], Any], **values: Any) -> tuple[Any, ...]:
    """convert(name, value) for every argument named, in order.

    >>> each(as_int, groups=2, stride=1)
    (2, 1)
    """
    return tuple(convert(name, value) for name, value in values.items())


def as_int(param: str, value: Any, none: bool = False) -> int | None:
    """An int as torch takes it: not a bool (its C++ ops refuse one), within int64.

    >>> as_int("groups", 2)
    2
    """
    if type(value) is int and -INT64 <= value < INT64:  # the usual case, first
        return value
    if none and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(param, "an integer", _quoted_value(value))
    if not -INT64 <= value < INT64:
        raise fail(param, "an integer that fits in int64", _shorter(str(value)))
    return int(value)


def as_int_or_tuple(param: str, value: Any) -> int | tuple[int, ...]:
    """One int for every dim, or a tuple (or list) of ints, one per dim."""
    if type(value) is int:
        return as_int(param, value)  # type: ignore[return-value]
    if isinstance(value, (tuple, list)):
        return tuple(as_int(param, v) for v in value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(param, "an integer or a tuple of integers", _quoted_value(value))
    return as_int(param, value)  # type: ignore[return-value]


def as_shape(param: str, value: Any, none: bool = False) -> tuple[int, ...]:
    """A shape given as a sequence of ints (None, where ``none`` allows it)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise fail(param, "a sequence of integers", _quoted_value(value))
    return tuple(as_int(param, v, none) for v in value)  # type: ignore[misc]


def as_flag(param: str, value: Any) -> bool:
    """True or False: torch's C++ ops refuse other values for most flags."""
    if not isinstance(value, bool):
        raise fail(param, "True or False", _quoted_value(value))
    return value


def as_number(param: str, value: Any, rule: str = "a number") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(param, rule, _quoted_value(value))
    return value


def _quoted_value(value: Any) -> str:
    return _shorter(repr(value))


def _shorter(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_positive(param: str, value: int | Sequence[int]) -> None:
    if (value if isinstance(value, int) else min(value, default=1)) <= 0:
        raise fail(param, "greater than zero", _show(value))


def check_non_negative(param: str, value: int | Sequence[int]) -> None:
    if (value if isinstance(value, int) else min(value, default=0)) < 0:
        raise fail(param, "zero or greater", _show(value))


def _show(value: int | Sequence[int]) -> str:
    return str(value) if isinstance(value, int) else fmt_shape(value)


def quoted(text: str, limit: int = 60) -> str:
    """repr() of what the user typed, cut short when it is long."""
    return repr(_shorter(text, limit))


_SEPARATOR = re.compile(r"(?<=[0-9*])\s*x\s*(?=[-0-9*])|\s*,\s*|\s+")


def parse_ints(text: str, param: str, wildcard: bool = False) -> tuple[int | None, ...]:
    """Integers from ``12,64,10``, ``12x64x10``, ``(12, 64, 10)`` or ``[12 64 10]``.

    With ``wildcard``, ``*`` or ``-1`` stands for any size and reads as None.

    >>> parse_ints("12x64x10", "input_shape")
    (12, 64, 10)
    >>> parse_ints("torch.Size([8, 3, 224, 224])", "input_shape")
    (8, 3, 224, 224)
    >>> parse_ints("8,*,-1", "expect", wildcard=True)
    (8, None, None)
    """
    values = []
    for token in split_tokens(text, param):
        if wildcard and token in ("*", "-1"):
            values.append(None)
        elif not re.fullmatch(r"-?[0-9]+", token, flags=re.ASCII):
            raise fail(param, "integers separated by ',' or 'x'", quoted(text))
        elif len(token.lstrip("-")) > 19 or not -INT64 <= int(token) < INT64:
            raise fail(param, "made of sizes that fit in int64", quoted(text))
        else:
            values.append(int(token))
    if wildcard and any(v is not None and v < 0 for v in values):
        raise fail(param, "made of sizes >= 0, * or -1 (any size)", quoted(text))
    return tuple(values)


def split_tokens(text: str, param: str) -> list[str]:
    """The items of a tuple as typed: brackets, torch.Size(...) and separators off.

    Written without nested repetition, so that no input makes it slow.
    """
    body = text.strip()
    if body.startswith("torch.Size(") and body.endswith(")"):
        body = body[len("torch.Size(") : -1].strip()
    if body[:1] + body[-1:] in ("()", "[]"):
        body = body[1:-1].strip()
    if body.endswith(","):
        body = body[:-1].strip()  # a trailing comma, as in the tuple (3,)
    tokens = _SEPARATOR.split(body) if body else []
    if not tokens or "" in tokens:
        raise fail(param, "one or more integers separated by ',' or 'x'", quoted(text))
    return tokens


def parse_shape(text: str, param: str) -> tuple[int, ...]:
    """A tensor shape: one or more sizes, each zero or greater."""
    shape = parse_ints(text, param)
    if any(n < 0 for n in shape):
        raise fail(param, "made of sizes >= 0", quoted(text))
    return shape  # type: ignore[return-value]


def parse_int_or_tuple(text: str, param: str) -> int | tuple[int, ...]:
    """``3`` stays an int (one value for every dim); ``3,5`` becomes a tuple."""
    values = parse_ints(text, param)
    return values[0] if len(values) == 1 and "," not in text else values  # type: ignore

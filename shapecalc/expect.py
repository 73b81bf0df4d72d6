"""Expectations on computed shapes: ``output=8,16,112,112``, ``*`` for any size."""

from __future__ import annotations

from collections.abc import Iterable

from .layers.common import LayerResult, ShapeError, fmt_shape

Pattern = tuple[int | None, ...]


def known_names(result: LayerResult) -> dict[str, tuple[int, ...]]:
    """Every tensor an expectation may name: rows, then weights and biases."""
    return result.shapes | dict(result.weights)


def check(
    expectations: Iterable[tuple[str, Pattern]], result: LayerResult
) -> tuple[str, ...]:
    """One message per expectation that does not hold; ShapeError for a bad name.

    Pairs, not a dict: two expectations on one tensor are both checked.
    """
    shapes = known_names(result)
    failures = []
    for name, pattern in expectations:
        if name not in shapes:
            names = list(shapes)
            shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            raise ShapeError(
                "expect",
                f"expect must name a tensor of {result.layer} ({shown}), got {name!r}",
            )
        if not matches(pattern, shapes[name]):
            failures.append(
                f"{name} expected {show(pattern)}, computed {fmt_shape(shapes[name])}"
            )
    return tuple(failures)


def matches(pattern: Pattern, shape: tuple[int, ...]) -> bool:
    return len(pattern) == len(shape) and all(
        p is None or p == s for p, s in zip(pattern, shape)
    )


def show(pattern: Pattern) -> str:
    """A pattern as the shapes are shown: ``(8, *, 112)``, ``(5,)``, ``()``."""
    items = ["*" if p is None else str(p) for p in pattern]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"

"""Spec files: many layers, each with its parameters, input and expectations.

A spec file is TOML or JSON. In TOML each ``[[layer]]`` table is one entry; in
JSON the file holds ``{"layer": [...]}`` (or a bare list of entries). An entry
names the torch class in ``type`` and then takes the constructor arguments by
their torch names, plus ``input_shape``, the optional forward arguments
(``hx_shape``, ``cx_shape``, ``output_size``) and ``expect``, a table of tensor
names to shapes (``*`` or -1 matches any size). ``name`` labels the entry.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import tomllib

from .expect import Pattern, check
from .layers.common import INT64, LayerResult, ShapeError, fmt_shape
from .layers.conv import conv
from .layers.conv import torch_args as conv_args
from .layers.pool import CLASS as POOL_CLASSES
from .layers.pool import needs as pool_needs
from .layers.pool import pool
from .layers.pool import torch_args as pool_args
from .layers.rnn import rnn, rnn_cell
from .layers.rnn import torch_args as rnn_args


def _states(name: str) -> tuple[str, ...]:
    return ("hx_shape", "cx_shape") if name == "LSTM" else ("hx_shape",)


# each class: the function that computes it, the arguments it takes (those of
# torch's constructor, then those of its forward) and how many of the first of
# them it cannot do without
LAYERS: dict[str, tuple[Callable[..., LayerResult], tuple[str, ...], int]] = {
    **{
        name: (partial(rnn, mode=name.lower()), rnn_args(name) + _states(name), 2)
        for name in ("RNN", "LSTM", "GRU")
    },
    **{
        f"{name}Cell": (
            partial(rnn_cell, mode=name.lower()),
            rnn_args(name, cell=True) + _states(name),
            2,
        )
        for name in ("RNN", "LSTM", "GRU")
    },
    **{f"Conv{d}d": (partial(conv, dims=d), conv_args(), 3) for d in (1, 2, 3)},
    **{
        f"ConvTranspose{d}d": (
            partial(conv, dims=d, transposed=True),
            conv_args(transposed=True) + ("output_size",),
            3,
        )
        for d in (1, 2, 3)
    },
    **{
        f"{name}{d}d": (
            partial(pool, kind=kind, dims=d),
            pool_args(kind, d),
            pool_needs(kind),
        )
        for d in (1, 2, 3)
        for kind, name in POOL_CLASSES.items()
    },
}
RESERVED = {"type", "name", "expect", "input_shape"}
FLAGS = {
    "bias",
    "batch_first",
    "bidirectional",
    "ceil_mode",
    "count_include_pad",
    "return_indices",
}
NUMBERS = {"dropout", "norm_type"}
WORDS = {"nonlinearity", "padding_mode"}


@dataclass(frozen=True)
class Entry:
    """One layer of a spec file, as read, before any check."""

    file: str
    index: int
    line: int | None
    data: dict[str, Any]

    @property
    def name(self) -> str:
        name = self.data.get("name") if isinstance(self.data, dict) else None
        return printable(str(name or f"#{self.index + 1}"))


@dataclass(frozen=True)
class Outcome:
    """The verdict on one entry: pass, fail (a check did not hold) or invalid."""

    entry: Entry | None
    file: str
    status: str
    detail: str
    result: LayerResult | None = None
    verified: Any = None
    failures: tuple[str, ...] = field(default=())

    @property
    def location(self) -> str:
        """The file, and the line the entry starts on where it is known."""
        line = self.entry.line if self.entry else None
        return printable(f"{self.file}:{line}" if line else self.file)

    @property
    def layer(self) -> str:
        return (
            self.result.layer
            if self.result
            else printable(str(_get(self.entry.data, "type") if self.entry else "-"))
        )


def printable(text: str) -> str:
    """Control characters escaped, so that a name cannot forge a line or a
    column of the plain report, nor break the XML of a JUnit one."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode() for c in text
    )


def _get(data: Any, key: str) -> Any:
    return (data.get(key) if isinstance(data, dict) else None) or "-"


class SpecError(ValueError):
    """A file that cannot be read as a spec at all."""


def load(path: str, text: str | None = None) -> list[Entry]:
    """Entries of one file (``-`` reads stdin); SpecError if it cannot be parsed."""
    name = display_name(path)
    try:
        if text is None:  # TOML and JSON files are UTF-8, whatever the locale
            raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
            text = raw.decode("utf-8")
    except OSError as exc:
        raise SpecError(f"{name}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{name}: cannot read: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    head = text.lstrip()[:2]
    # TOML spec files open with a [[layer]] header or a comment, JSON with { or [
    is_json = path.endswith(".json") or (
        not path.endswith(".toml") and head[:1] in ("{", "[") and head != "[["
    )
    data = _parse_json(name, text) if is_json else _parse_toml(name, text)
    layers = (
        data
        if isinstance(data, list)
        else (data.get("layer") if isinstance(data, dict) else None)
    )
    if not isinstance(layers, list) or not layers:
        raise SpecError(
            f"{name}: a spec must list its entries under 'layer' "
            '([[layer]] tables in TOML, "layer": [...] in JSON)'
        )
    lines = _entry_lines(text, is_json)
    if len(lines) != len(layers):  # an entry without "type", say: lines unknown
        lines = [None] * len(layers)
    return [
        Entry(name, i, line, item) for i, (line, item) in enumerate(zip(lines, layers))
    ]


def display_name(path: str) -> str:
    return "<stdin>" if path == "-" else printable(path)


def _parse_json(name: str, text: str):
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{name}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    except (RecursionError, ValueError) as exc:  # nesting or digits past limits
        raise SpecError(f"{name}: invalid JSON: {_first_line(exc)}") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice (TOML refuses it too)."""
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise ValueError(f"duplicate key {key!r}")
        data[key] = value
    return data


def _parse_toml(name: str, text: str):
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+)", str(exc))
        line = f":{match.group(1)}" if match else ""
        raise SpecError(f"{name}{line}: invalid TOML: {exc}") from None
    except (RecursionError, ValueError) as exc:
        raise SpecError(f"{name}: invalid TOML: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _entry_lines(text: str, is_json: bool) -> list[int]:
    """Where each entry starts, for messages: TOML headers or JSON objects."""
    pattern = r"^[ \t]*\[\[\s*layer\s*\]\]" if not is_json else r'"type"\s*:'
    lines, line, pos = [], 1, 0
    for match in re.finditer(pattern, text, flags=re.MULTILINE):
        line += text.count("\n", pos, match.start())
        pos = match.start()
        lines.append(line)
    return lines


def run_entry(
    entry: Entry, verify: Callable | None = None, cache: dict | None = None
) -> Outcome:
    """Compute one entry, check its expectations and, optionally, verify it.

    With a ``cache``, entries that differ only in name and expectations share
    one result: models repeat their layers, and a result is immutable.
    """
    if not isinstance(entry.data, dict):
        return _invalid(entry, "an entry must be a table of parameters")
    name = entry.data.get("name")
    if name is not None and not isinstance(name, str):
        return _invalid(entry, f"name must be a string, got {name!r}")
    try:
        result = _computed(entry.data, cache)
        wanted = expectations(entry.data.get("expect", {}))
        failures = check(wanted.items(), result)
    except ShapeError as exc:
        return _invalid(entry, str(exc))
    try:
        verified = verify(result) if verify else None
    except ShapeError as exc:  # too big to verify here: the shapes still stand
        return Outcome(entry, entry.file, "invalid", printable(str(exc)), result)
    if verified is not None and not verified.ok:
        failures += (
            verified.error or f"torch on {verified.device} returned other shapes",
        )
    if failures:
        detail = printable("; ".join(failures))
        return Outcome(entry, entry.file, "fail", detail, result, verified, failures)
    summary = _summary(result)
    if verified is not None:
        summary += f", verified on {verified.device}"
    return Outcome(entry, entry.file, "pass", summary, result, verified)


def _computed(data: dict[str, Any], cache: dict | None) -> LayerResult:
    """compute(data), or the result of an earlier entry with the same layer."""
    if cache is None:
        return compute(data)
    try:  # JSON text tells true from 1 and 1.0, as the checks do
        key = json.dumps({k: v for k, v in data.items() if k not in ("name", "expect")})
    except (TypeError, ValueError):  # a value JSON cannot hold: compute refuses it
        return compute(data)
    result = cache.get(key)
    if result is None:
        result = cache[key] = compute(data)
    return result


def compute(data: dict[str, Any]) -> LayerResult:
    """The LayerResult of one entry's parameters."""
    layer = data.get("type")
    if not isinstance(layer, str) or layer not in LAYERS:
        raise ShapeError(
            "type", f"type must be one of {', '.join(LAYERS)}, got {layer!r}"
        )
    layer_fn, takes, needs = LAYERS[layer]
    for key in data:
        if key not in takes and key not in RESERVED:
            raise ShapeError(key, f"{key} is not a parameter of {layer}")
    values = {
        k: _value(k, v) for k, v in data.items() if k in takes or k == "input_shape"
    }
    for key in takes[:needs]:
        if key not in values:
            raise ShapeError(key, f"{key} must be given for {layer}")
    if "input_shape" not in values:
        raise ShapeError(
            "input_shape",
            "input_shape must be given, e.g. input_shape = [8, 3, 224, 224]",
        )
    return layer_fn(values.pop("input_shape"), **values)


def _value(key: str, value: Any) -> Any:
    """A parameter checked against the type torch takes; lists become tuples.

    JSON's null is None, which some arguments take (a pool's stride); the
    layer's own checks refuse it where torch does."""
    if value is None:
        return None
    if key in FLAGS:
        if type(value) is not bool:
            raise ShapeError(key, f"{key} must be true or false, got {value!r}")
        return value
    if key in NUMBERS:
        if type(value) not in (int, float):
            raise ShapeError(key, f"{key} must be a number, got {value!r}")
        return value
    if key in WORDS or (key == "padding" and isinstance(value, str)):
        if not isinstance(value, str):
            raise ShapeError(key, f"{key} must be a string, got {value!r}")
        return value
    if isinstance(value, list) and key not in ("input_shape", "hx_shape", "cx_shape"):
        return tuple(_integer(key, v, none=key == "output_size") for v in value)
    if key in ("input_shape", "hx_shape", "cx_shape"):
        if not isinstance(value, list) or any(type(v) is not int for v in value):
            raise ShapeError(key, f"{key} must be a list of integers, got {value!r}")
        return tuple(_integer(key, v) for v in value)
    return _integer(key, value)


def _integer(key: str, value: Any, none: bool = False) -> int | None:
    """An int that fits in int64 (None too where adaptive pools take it)."""
    if none and (value is None or str(value).lower() == "none"):
        return None
    if type(value) is not int:
        raise ShapeError(
            key, f"{key} must be an integer or a list of integers, got {value!r}"
        )
    if not -INT64 <= value < INT64:
        raise ShapeError(key, f"{key} must fit in int64, got {value}")
    return value


def expectations(expect: Any) -> dict[str, Pattern]:
    """The ``expect`` table of an entry as patterns; ShapeError if malformed."""
    if not isinstance(expect, dict):
        raise ShapeError(
            "expect", f"expect must be a table of NAME = SHAPE, got {expect!r}"
        )
    return {name: _pattern(name, want) for name, want in expect.items()}


def _pattern(name: str, want: Any) -> Pattern:
    items = want if isinstance(want, list) else None
    if items is None or not all(
        v == "*" or (type(v) is int and v >= -1) for v in items
    ):
        raise ShapeError(
            "expect",
            f"expect.{name} must be a list of sizes, * or -1 for any, got {want!r}",
        )
    return tuple(None if v in ("*", -1) else v for v in items)


def _invalid(entry: Entry, message: str) -> Outcome:
    return Outcome(entry, entry.file, "invalid", printable(message))


def _summary(result: LayerResult) -> str:
    out = next(t for t in result.tensors if t.role == "output")
    return f"{out.name} {fmt_shape(out.shape)}"


def file_error(path: str, message: str) -> Outcome:
    return Outcome(None, printable(path), "invalid", printable(message))


def run_files(
    paths: list[str], verify: Callable | None = None, progress: Callable | None = None
) -> list[Outcome]:
    """Every entry of every file; a broken file or entry never hides the rest."""
    loaded: list[Entry | Outcome] = []
    for path in paths:
        try:
            loaded += load(path)
        except SpecError as exc:
            loaded.append(file_error(display_name(path), str(exc)))
    step = progress(len(loaded)) if progress else (lambda: None)
    outcomes, cache = [], {}
    for item in loaded:
        done = item if isinstance(item, Outcome) else run_entry(item, verify, cache)
        outcomes.append(done)
        step()
    return outcomes


def totals(outcomes: list[Outcome]) -> dict[str, int]:
    counts = {"passed": 0, "failed": 0, "invalid": 0}
    for outcome in outcomes:
        key = {"pass": "passed", "fail": "failed"}.get(outcome.status, "invalid")
        counts[key] += 1
    return counts

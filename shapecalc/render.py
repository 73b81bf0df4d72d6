"""Every output format, behind one switch: :func:`show`.

The only module that imports rich, and only for the table format, so that the
machine formats start as fast as Python does.
"""

from __future__ import annotations

import enum
import json
import re
import sys
from math import isfinite, prod
from typing import Any

from .layers.common import (
    Dtype,
    LayerResult,
    ShapeError,
    Step,
    fmt_shape,
    human_bytes,
    memory,
)


class Format(str, enum.Enum):
    table = "table"
    json = "json"
    plain = "plain"
    shape = "shape"


def default_format() -> Format:
    """A table on a terminal; tab-separated lines when piped, as scripts expect."""
    terminal = sys.stdout is not None and sys.stdout.isatty()
    return Format.table if terminal else Format.plain


def csv_shape(shape) -> str:
    return ",".join(str(n) for n in shape)


def show(
    result: LayerResult,
    fmt: Format,
    verified=None,
    explain: bool = False,
    dtype: Dtype = Dtype.float32,
    expect: tuple[str, ...] | None = None,
) -> None:
    """Print one result in the chosen format on stdout.

    ``expect`` holds the failed --expect checks (empty when all held), or None
    when there were none to check."""
    if fmt is Format.json:
        data = as_json(result, verified, dtype)
        data["expect"] = (
            None if expect is None else {"ok": not expect, "failures": list(expect)}
        )
        if explain:
            data["explain"] = [_step_json(step) for step in result.steps]
        print(dumps(data))
    elif fmt in (Format.plain, Format.shape):
        if fmt is Format.plain:
            for t in result.tensors:
                print(f"{t.name}\t{csv_shape(t.shape)}")
        else:
            print(csv_shape(result.shapes[output_name(result)]))
        # these formats hold data only: the worked-out sizes go to stderr
        for step in result.steps if explain else ():
            print(f"shapecalc: {step}", file=sys.stderr)
    else:
        _table(result, verified, explain, dtype)


def dumps(data) -> str:
    """Indented JSON with each list of numbers kept on one line."""
    text = json.dumps(data, indent=2)
    return re.sub(
        r"\[\s*([-\d.,\s]*?)\s*\]",
        lambda m: "[" + ", ".join(m.group(1).split()).replace(",,", ",") + "]",
        text,
    )


def output_name(result: LayerResult) -> str:
    return next(t.name for t in result.tensors if t.role == "output")


def as_json(result: LayerResult, verified=None, dtype=Dtype.float32) -> dict:
    return {
        "layer": result.layer,
        "params": {k: _json_value(v) for k, v in result.params.items()},
        "shapes": {t.name: list(t.shape) for t in result.tensors},
        "formulas": {t.name: t.formula for t in result.tensors},
        "symbols": symbol_values(result),
        "parameters": result.parameters,
        "weights": {name: list(shape) for name, shape in result.weights},
        "cost": {
            "parameters": result.parameters,
            "macs": result.macs,
            "dtype": Dtype(dtype).value,
            "bytes": memory(result, dtype),
        },
        "warnings": list(result.warnings),
        "verified": None
        if verified is None
        else {
            "device": verified.device,
            "ok": verified.ok,
            "shapes": {k: list(v) for k, v in verified.shapes.items()},
            "parameters": verified.parameters,
            "error": verified.error,
            "note": verified.note,
        },
    }


def _json_value(value):
    """Tuples as lists; inf and nan (an LPPool's norm_type may be inf) as the
    strings "inf" and "nan", which every JSON parser reads, unlike Infinity."""
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, float) and not isfinite(value):
        return str(value)
    return value


def _step_json(step: Step) -> dict[str, Any]:
    return {
        "name": step.name,
        "formula": step.formula,
        "arithmetic": step.arithmetic,
        "value": step.value,
        "note": step.note,
    }


def error(exc: Exception, fmt: Format | None, explain: bool = False) -> None:
    """One line on stderr (with --explain, then the arithmetic that breaks the
    rule); under --format json also a JSON object on stdout."""
    print(f"shapecalc: error: {exc}", file=sys.stderr)
    steps = getattr(exc, "steps", ()) if explain else ()
    for step in steps:
        print(f"  {step}", file=sys.stderr)
    if fmt is Format.json:
        param = exc.param if isinstance(exc, ShapeError) else None
        data = {"error": str(exc), "param": param}
        if explain:
            data["explain"] = [_step_json(step) for step in steps]
        print(json.dumps(data))


def warn(message: str) -> None:
    print(f"shapecalc: warning: {message}", file=sys.stderr)


def _table(result: LayerResult, verified, explain: bool, dtype: Dtype) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    table = Table(title=call_repr(result), title_justify="left", title_style="bold")
    for column in ("tensor", "shape", "formula", "elements"):
        table.add_column(
            column,
            justify="right" if column == "elements" else "left",
            no_wrap=column in ("tensor", "elements"),
        )
    if verified is not None:
        table.add_column("torch")
    for t in result.tensors:
        row = [t.name, fmt_shape(t.shape), t.formula, f"{t.numel:,}"]
        if verified is not None:
            row.append(_mark(verified.shapes.get(t.name), t.shape))
        table.add_row(*row)
    console.print(table)
    values = symbol_values(result).items()
    console.print("where " + ", ".join(f"{k} = {v}" for k, v in values))
    if explain:
        for step in result.steps:
            console.print(_explained(step), soft_wrap=True)
    in_rows = {t.name for t in result.tensors}
    if all(name in in_rows for name, _ in result.weights):
        console.print(
            f"parameters: {result.parameters:,}" + _param_mark(result, verified)
        )
    else:
        console.print(_weights_table(result, verified))
    console.print(_cost_line(result, dtype), soft_wrap=True)
    if verified is not None:
        console.print(verdict(verified))


def symbol_values(result: LayerResult) -> dict[str, int]:
    """The symbols of the formulas, output sizes (H_out, ...) included."""
    values = dict(result.symbols)
    for step in result.steps:
        if step.name.endswith("_out"):
            values.setdefault(step.name, step.value)
    return values


def _explained(step: Step) -> str:
    """A step on three lines: formula, the user's numbers, the value."""
    pad = " " * len(step.name)
    lines = [f"{step.name} = {step.formula}"]
    if step.arithmetic not in (step.formula, str(step.value)):
        lines.append(f"{pad} = {step.arithmetic}")
    lines.append(f"{pad} = {step.value}" + (f"  ({step.note})" if step.note else ""))
    return "\n".join(lines)


def _cost_line(result: LayerResult, dtype: Dtype) -> str:
    sizes = memory(result, dtype)
    shown = ", ".join(f"{k} {human_bytes(v)}" for k, v in sizes.items())
    return (
        f"cost: {result.macs:,} MACs (whole batch, bias not counted); "
        f"{Dtype(dtype).value} memory: {shown}"
    )


def verdict(verified) -> str:
    """One line on how verification went, and the meta device's caveat."""
    if verified.error:
        text = f"verification on {verified.device} failed: {verified.error}"
    elif verified.ok:
        text = f"verified on {verified.device}: every shape agrees with torch"
    else:
        text = f"verified on {verified.device}: torch disagrees ({marks()[1]})"
    return text + (f"\nnote: {verified.note}" if verified.note else "")


def _weights_table(result: LayerResult, verified):
    """One row per layer and direction, one column per kind of weight."""
    from rich.table import Table

    groups: dict[str, dict[str, tuple[int, ...]]] = {}
    for name, shape in result.weights:
        match = re.fullmatch(r"(.+?)_l(\d+)(_reverse)?", name)
        base, row = (
            (match.group(1), match.group(2) + (" reverse" if match.group(3) else ""))
            if match
            else (name, "")
        )
        groups.setdefault(row, {})[base] = shape
    bases = list(dict.fromkeys(b for row in groups.values() for b in row))
    table = Table(
        title=f"parameters: {result.parameters:,}",
        title_justify="left",
        title_style="bold",
    )
    if any(groups):
        table.add_column("layer", no_wrap=True)
    for column in bases + ["count"]:
        table.add_column(column, justify="right" if column == "count" else "left")
    for row, shapes in groups.items():
        cells = [fmt_shape(shapes[b]) if b in shapes else "-" for b in bases]
        count = f"{sum(prod(s) for s in shapes.values()):,}"
        table.add_row(*([row] if row else []), *cells, count)
    table.caption = _param_mark(result, verified).strip(", ") or None
    return table


def _param_mark(result: LayerResult, verified) -> str:
    if verified is None or verified.parameters is None:
        return ""
    ok = verified.parameters == result.parameters
    return f", torch: {verified.parameters:,} {marks()[0 if ok else 1]}"


def _mark(got, want) -> str:
    """A tick when torch agrees; torch's own shape when it does not."""
    if got is None:
        return "-"
    yes, no = marks()
    return yes if tuple(got) == tuple(want) else f"{no} {fmt_shape(got)}"


def marks() -> tuple[str, str]:
    """✓ and ✗ where stdout can encode them, else plain letters."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    try:
        "✓✗".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return "ok", "x"
    return "✓", "✗"


def call_repr(result: LayerResult) -> str:
    """The layer as torch would print it, e.g. ``LSTM(10, 5, num_layers=2)``."""
    params = dict(result.params)
    positional = [
        params.pop(k)
        for k in (
            "input_size",
            "hidden_size",
            "in_channels",
            "out_channels",
            "kernel_size",
        )
        if k in params
    ]
    args = [_py(v) for v in positional] + [
        f"{k}={_py(v)}" for k, v in params.items() if not _is_default(k, v)
    ]
    return f"{result.layer}({', '.join(args)})"


_DEFAULTS = {
    "num_layers": 1,
    "nonlinearity": "tanh",
    "bias": True,
    "batch_first": False,
    "dropout": 0.0,
    "bidirectional": False,
    "proj_size": 0,
    "groups": 1,
    "padding_mode": "zeros",
    "stride": 1,
    "padding": 0,
    "dilation": 1,
    "output_padding": 0,
    "ceil_mode": False,
    "return_indices": False,
    "count_include_pad": True,
    "divisor_override": None,
}


def _is_default(name: str, value) -> bool:
    values = value if isinstance(value, tuple) else (value,)
    return name in _DEFAULTS and all(v == _DEFAULTS[name] for v in values)


def _py(value) -> str:
    return repr(value) if isinstance(value, str) else str(value)


STATUS_STYLE = {"pass": "green", "fail": "red", "invalid": "yellow"}


def show_report(outcomes, counts: dict[str, int], fmt: Format, quiet=False) -> None:
    """The outcome of `shapecalc check` in the chosen format."""
    total = ", ".join(f"{n} {key}" for key, n in counts.items())
    if fmt is Format.json:
        # compact: a report may hold many thousand entries
        report = {"entries": [_entry_json(o) for o in outcomes], "summary": counts}
        print(json.dumps(report, separators=(",", ":")))
    elif fmt in (Format.plain, Format.shape):
        for o in outcomes:
            if quiet and o.status == "pass":
                continue
            name = o.entry.name if o.entry else "-"
            if fmt is Format.shape:
                shape = o.result.shapes[output_name(o.result)] if o.result else ()
                print(f"{o.location}\t{name}\t{csv_shape(shape)}")
            else:
                print(f"{o.location}\t{name}\t{o.layer}\t{o.status}\t{o.detail}")
    else:
        _report_table(outcomes, total, quiet)


def _report_table(outcomes, total: str, quiet: bool) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table()
    # long paths fold rather than squeeze the other columns out of sight
    table.add_column("entry", overflow="fold")
    table.add_column("layer", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("detail")
    for o in outcomes:
        if quiet and o.status == "pass":
            continue
        name = f"{o.location} {o.entry.name}" if o.entry else o.file
        style = STATUS_STYLE[o.status]
        # names and details come from spec files: shown as written, not markup
        table.add_row(
            escape(name), escape(o.layer), f"[{style}]{o.status}[/]", escape(o.detail)
        )
    console = Console(highlight=False)
    if table.rows:
        console.print(table)
    console.print(total)


def _entry_json(o) -> dict[str, Any]:
    return {
        "file": o.file,
        "entry": o.entry.name if o.entry else None,
        "line": o.entry.line if o.entry else None,
        "layer": o.layer,
        "status": o.status,
        "detail": o.detail,
        "shapes": {k: list(v) for k, v in o.result.shapes.items()}
        if o.result
        else None,
        "verified": None
        if o.verified is None
        else {"device": o.verified.device, "ok": o.verified.ok},
    }


def write_junit(outcomes, path: str) -> None:
    """A JUnit XML report: one testsuite per file, one testcase per entry."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name="shapecalc")
    suites: dict[str, ET.Element] = {}
    for o in outcomes:
        suite = suites.get(o.file)
        if suite is None:
            suite = suites[o.file] = ET.SubElement(root, "testsuite", name=o.file)
        name = o.entry.name if o.entry else "(file)"
        case = ET.SubElement(suite, "testcase", classname=o.file, name=name)
        if o.entry and o.entry.line:
            case.set("file", o.file)
            case.set("line", str(o.entry.line))
        if o.status != "pass":
            tag = "failure" if o.status == "fail" else "error"
            ET.SubElement(case, tag, message=o.detail).text = o.detail
    for element in [root, *suites.values()]:
        cases = element.iter("testcase")
        _count_into(element, list(cases))
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _count_into(element, cases) -> None:
    element.set("tests", str(len(cases)))
    element.set("failures", str(sum(c.find("failure") is not None for c in cases)))
    element.set("errors", str(sum(c.find("error") is not None for c in cases)))


def progress_bar(total: int):
    """A rich progress bar on stderr; returns the function that advances it."""
    from rich.console import Console
    from rich.progress import Progress

    bar = Progress(console=Console(stderr=True), transient=True)
    bar.start()
    task = bar.add_task("verifying", total=total)

    def step() -> None:
        bar.advance(task)
        if bar.finished:
            bar.stop()

    return step

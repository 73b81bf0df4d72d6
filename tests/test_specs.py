"""`shapecalc check` over spec files: pass, fail, invalid, JUnit, stdin."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from typer.testing import CliRunner

from shapecalc import ShapeError
from shapecalc.cli import app
from shapecalc.specs import FLAGS, LAYERS, compute, load, run_files, totals
from tests.conftest import TORCH, needs_torch, torch_outcome

runner = CliRunner()
EXAMPLE = Path(__file__).parent.parent / "examples" / "model.shapes.toml"

GOOD_TOML = """
[[layer]]
name = "stem"
type = "Conv2d"
in_channels = 3
out_channels = 16
kernel_size = 3
padding = 1
input_shape = [8, 3, 32, 32]
expect = { output = [8, 16, 32, 32] }
"""
FAILING_TOML = GOOD_TOML.replace("[8, 16, 32, 32]", "[8, 16, 30, 30]")
MIXED_TOML = (
    GOOD_TOML
    + """
[[layer]]
name = "bad-proj"
type = "LSTM"
input_size = 4
hidden_size = 3
proj_size = 3
input_shape = [2, 4]

[[layer]]
type = "GRU"
input_size = 4
hidden_size = 3
input_shape = [5, 2, 4]
expect = { h_n = [1, 2, 4] }
"""
)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def check(*args, stdin=None):
    return runner.invoke(app, ["check", *args], input=stdin)


def test_the_shipped_example_passes():
    result = check(str(EXAMPLE), "--format", "json")
    assert result.exit_code == 0, result.stdout
    assert json.loads(result.stdout)["summary"] == {
        "passed": 4,
        "failed": 0,
        "invalid": 0,
    }


def test_failing_expectation_exits_1_with_the_difference(tmp_path):
    path = write(tmp_path, "f.toml", FAILING_TOML)
    result = check(path, "--format", "plain")
    assert result.exit_code == 1
    assert result.stdout == (
        f"{path}:2\tstem\tConv2d\tfail\toutput expected "
        "(8, 16, 30, 30), computed (8, 16, 32, 32)\n"
    )


def test_a_bad_entry_is_reported_and_the_others_still_run(tmp_path):
    path = write(tmp_path, "m.toml", MIXED_TOML)
    result = check(path, "--format", "json")
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert [e["status"] for e in report["entries"]] == ["pass", "invalid", "fail"]
    bad = report["entries"][1]
    assert (bad["file"], bad["line"], bad["entry"], bad["detail"]) == (
        path,
        12,
        "bad-proj",
        "proj_size must be smaller than hidden_size=3, got 3",
    )
    assert report["entries"][2]["entry"] == "#3"
    assert report["summary"] == {"passed": 1, "failed": 1, "invalid": 1}


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("broken.toml", "[[layer]\ntype = 1", "invalid TOML"),
        (
            "broken.json",
            '{"layer": [\n{"type": }]}',
            ":2: invalid JSON: Expecting value",
        ),
        ("empty.toml", "title = 'x'", "a spec must list its entries under 'layer'"),
    ],
)
def test_a_malformed_file_is_invalid_and_named(tmp_path, name, text, message):
    bad = write(tmp_path, name, text)
    good = write(tmp_path, "good.toml", GOOD_TOML)
    result = check(bad, good, "--format", "json")
    assert result.exit_code == 2
    entries = json.loads(result.stdout)["entries"]
    assert entries[0]["status"] == "invalid" and entries[0]["file"] == bad
    assert message in entries[0]["detail"] and entries[0]["detail"].startswith(bad)
    assert entries[1]["status"] == "pass"


@pytest.mark.parametrize(
    "data, detail",
    [
        ({"type": "Conv9d", "input_shape": [1]}, "type must be one of RNN, LSTM"),
        (
            {"type": "GRU", "input_size": 2, "hidden_size": 2},
            "input_shape must be given",
        ),
        (
            {
                "type": "GRU",
                "input_size": 2,
                "hidden_size": 2,
                "input_shape": [1, 2],
                "kernel_size": 3,
            },
            "kernel_size is not a parameter of GRU",
        ),
        (
            {
                "type": "GRU",
                "input_size": 2,
                "hidden_size": 2,
                "input_shape": [1, 2],
                "expect": {"output": "1,2"},
            },
            "expect.output must be a list of sizes",
        ),
        (
            {
                "type": "GRU",
                "input_size": 2,
                "hidden_size": 2,
                "input_shape": [1, 2],
                "expect": {"weight": [1]},
            },
            "expect must name a tensor of GRU",
        ),
        (
            {"type": "GRU", "input_size": 2, "hidden_size": 2, "input_shape": [1.5, 2]},
            "input_shape must be a list of integers",
        ),
    ],
)
def test_invalid_entries(tmp_path, data, detail):
    path = write(tmp_path, "e.json", json.dumps({"layer": [data]}))
    (outcome,) = run_files([path])
    assert outcome.status == "invalid"
    assert detail in outcome.detail


def test_stdin_json_and_wildcards():
    spec = {
        "layer": [
            {
                "type": "LSTM",
                "input_size": 3,
                "hidden_size": 4,
                "input_shape": [7, 2, 3],
                "expect": {"c_n": [1, "*", 4], "output": [-1, 2, 4]},
            }
        ]
    }
    result = check("-", "--format", "plain", stdin=json.dumps(spec))
    assert result.exit_code == 0
    assert result.stdout == "<stdin>:1\t#1\tLSTM\tpass\toutput (7, 2, 4)\n"


def test_junit_xml_parses_and_counts(tmp_path):
    path = write(tmp_path, "m.toml", MIXED_TOML)
    xml = tmp_path / "report.xml"
    result = check(path, "--format", "plain", "--junit-xml", str(xml))
    assert result.exit_code == 2
    root = ET.parse(xml).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == (
        "3",
        "1",
        "1",
    )
    cases = root.findall("testsuite/testcase")
    assert [c.get("name") for c in cases] == ["stem", "bad-proj", "#3"]
    assert cases[2].find("failure").get("message") == (
        "h_n expected (1, 2, 4), computed (1, 2, 3)"
    )


def test_table_quiet_lists_only_what_did_not_pass(tmp_path):
    path = write(tmp_path, "m.toml", MIXED_TOML)
    result = runner.invoke(
        app, ["check", path, "-q", "--format", "table"], env={"COLUMNS": "300"}
    )
    assert "stem" not in result.stdout and "bad-proj" in result.stdout
    assert result.stdout.rstrip().endswith("1 passed, 1 failed, 1 invalid")


def test_entry_lines_point_at_each_layer_table():
    entries = load("x.toml", MIXED_TOML)
    assert [e.line for e in entries] == [2, 12, 20]
    assert totals(run_files([str(EXAMPLE)])) == {"passed": 4, "failed": 0, "invalid": 0}


def test_stdin_toml_and_quiet_plain():
    result = check("-", "--format", "plain", "-q", stdin=MIXED_TOML)
    assert result.exit_code == 2
    assert [line.split("\t")[:4] for line in result.stdout.splitlines()] == [
        ["<stdin>:12", "bad-proj", "LSTM", "invalid"],
        ["<stdin>:20", "#3", "GRU", "fail"],
    ]


def test_json_entry_lines_are_dropped_when_they_cannot_be_trusted(tmp_path):
    # the second entry has no "type": counting "type" keys would misplace lines
    path = write(
        tmp_path,
        "t.json",
        json.dumps(
            {
                "layer": [
                    {
                        "type": "GRU",
                        "input_size": 2,
                        "hidden_size": 2,
                        "input_shape": [1, 2],
                    },
                    {"input_shape": [1]},
                ]
            },
            indent=1,
        ),
    )
    assert [o.entry.line for o in run_files([path])] == [None, None]


def test_junit_testcases_carry_file_and_line(tmp_path):
    path = write(tmp_path, "m.toml", MIXED_TOML)
    xml = tmp_path / "r.xml"
    check(path, "--format", "plain", "--junit-xml", str(xml))
    lines = [c.get("line") for c in ET.parse(xml).getroot().iter("testcase")]
    assert lines == ["2", "12", "20"]


@needs_torch
@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_verify_checks_every_entry_and_says_so(device):
    result = check(str(EXAMPLE), "--verify", "--device", device, "--format", "json")
    assert result.exit_code == 0, result.stderr
    entries = json.loads(result.stdout)["entries"]
    assert [e["verified"] for e in entries] == [{"device": device, "ok": True}] * 4
    assert entries[0]["detail"] == f"output (8, 16, 112, 112), verified on {device}"
    meta_note = (
        "shapecalc: note: the meta device checks shapes, not every rule: torch "
        "skips some checks there (negative padding, output_padding >= stride)\n"
    )
    assert result.stderr == (meta_note if device == "meta" else "")


def test_entries_are_not_verified_without_verify():
    entries = json.loads(check(str(EXAMPLE), "--format", "json").stdout)["entries"]
    assert [e["verified"] for e in entries] == [None] * 4


@needs_torch
def test_verify_mismatch_fails_the_entry_with_exit_1(tmp_path, monkeypatch):
    from shapecalc.layers import conv as conv_module

    real = conv_module._forward

    def off_by_one(*args):
        outs, lines = real(*args)
        return tuple(o + 1 for o in outs), lines

    monkeypatch.setattr(conv_module, "_forward", off_by_one)
    path = write(tmp_path, "g.toml", GOOD_TOML.replace("expect = ", "# "))
    result = check(path, "--verify", "--format", "plain")
    assert result.exit_code == 1
    assert (
        result.stdout
        == f"{path}:2\tstem\tConv2d\tfail\ttorch on cpu returned other shapes\n"
    )


def test_too_big_to_verify_is_invalid_but_keeps_its_shapes(tmp_path):
    path = write(tmp_path, "g.toml", GOOD_TOML)
    result = check(path, "--verify", "--max-memory", "1KiB", "--format", "json")
    assert result.exit_code == 2
    (entry,) = json.loads(result.stdout)["entries"]
    assert entry["status"] == "invalid"
    assert entry["detail"].startswith("max_memory must cover the ")
    assert entry["detail"].endswith(
        "use --device meta to verify any size without allocating"
    )
    assert entry["shapes"]["output"] == [8, 16, 32, 32]


def test_table_keeps_details_readable_beside_a_long_path(tmp_path):
    deep = tmp_path / "a" / "very" / "long" / "path" / "to" / "the" / "project"
    deep.mkdir(parents=True)
    path = deep / "model.shapes.toml"
    path.write_text(EXAMPLE.read_text())
    result = runner.invoke(
        app, ["check", str(path), "--format", "table"], env={"COLUMNS": "80"}
    )
    assert result.exit_code == 0
    assert all(len(line) <= 80 for line in result.stdout.splitlines())
    assert "output (5, 64, 10)" in result.stdout
    assert "ConvTranspose2d" in result.stdout


# Differential: an entry may carry any argument of any class, at its default or
# not; torch's class decides whether it takes it, shapecalc must agree.
ANY_ARGUMENT = {
    "in_channels": st.just(2),
    "out_channels": st.sampled_from([2, 4]),
    "kernel_size": st.sampled_from([1, 2, 3]),
    "stride": st.sampled_from([1, 2]),
    "padding": st.sampled_from([0, 1]),
    "dilation": st.sampled_from([1, 2]),
    "groups": st.sampled_from([1, 2]),
    "bias": st.booleans(),
    "padding_mode": st.sampled_from(["zeros", "reflect"]),
    "output_padding": st.sampled_from([0, 1]),
    "input_size": st.just(3),
    "hidden_size": st.sampled_from([2, 4]),
    "num_layers": st.sampled_from([1, 2]),
    "nonlinearity": st.sampled_from(["tanh", "relu"]),
    "batch_first": st.booleans(),
    "dropout": st.sampled_from([0.0, 0.5]),
    "bidirectional": st.booleans(),
    "proj_size": st.sampled_from([0, 1]),
    "ceil_mode": st.booleans(),
    "count_include_pad": st.booleans(),
    "divisor_override": st.sampled_from([1, 3]),
    "norm_type": st.sampled_from([1, 2.0]),
    "output_size": st.sampled_from([1, 2]),
    "return_indices": st.booleans(),
}


@st.composite
def entries_with_any_arguments(draw):
    """Mostly the class's own arguments (as shapecalc lists them, which only
    shapes the draw: torch decides), now and then one of another class."""
    layer = draw(st.sampled_from(sorted(LAYERS)))
    _, takes, needs = LAYERS[layer]
    entry = {"type": layer}
    for i, name in enumerate(takes):
        if name in ANY_ARGUMENT and draw(st.integers(0, 19)) < (19 if i < needs else 8):
            entry[name] = draw(ANY_ARGUMENT[name])
            if name not in FLAGS and draw(st.integers(0, 19)) == 0:
                # JSON's null; a flag must be true or false (README, limitations)
                entry[name] = None
    if draw(st.integers(0, 2)) == 0:
        name = draw(st.sampled_from(sorted(ANY_ARGUMENT)))
        entry[name] = draw(ANY_ARGUMENT[name])
    if "Cell" in layer:
        entry["input_shape"] = [2, 3]
    elif layer[-2] in "123":
        entry["input_shape"] = [1, 2] + [5] * int(layer[-2])
    else:
        entry["input_shape"] = [5, 1, 3]
    return entry


def _torch_entry(entry):
    args = {k: v for k, v in entry.items() if k not in ("type", "input_shape")}
    forward = {}
    if entry["type"].startswith("ConvTranspose") and "output_size" in args:
        size = args.pop("output_size")
        dims = int(entry["type"][-2])
        forward["output_size"] = None if size is None else [size] * dims
    cls = getattr(TORCH.nn, entry["type"])
    return torch_outcome(
        lambda: cls(**args),
        lambda module: module(TORCH.zeros(entry["input_shape"]), **forward),
    )


@needs_torch
@given(entries_with_any_arguments())
def test_entries_take_the_arguments_torch_takes(entry):
    try:
        ours = compute(entry)
    except ShapeError as exc:
        ours = exc
    status, shapes, _ = _torch_entry(entry)
    event(f"torch: {status}")
    assert isinstance(ours, ShapeError) == (status == "error"), (ours, shapes)
    if status == "ok":
        outputs = [t.shape for t in ours.tensors if t.role == "output"]
        assert outputs == shapes


def test_repeated_layers_share_one_result_but_keep_their_own_checks(tmp_path):
    gru = {"type": "GRU", "input_size": 2, "hidden_size": 3, "input_shape": [4, 2]}
    spec = {
        "layer": [
            gru | {"name": "a", "expect": {"h_n": [1, 3]}},
            gru | {"name": "b", "expect": {"h_n": [1, 4]}},
            gru | {"bias": True},
            gru | {"bias": 1},  # TOML and JSON tell 1 from true; so must the cache
            gru | {"name": ["not", "a", "string"]},
        ]
    }
    path = write(tmp_path, "r.json", json.dumps(spec))
    outcomes = run_files([path])
    assert [o.status for o in outcomes] == [
        "pass",
        "fail",
        "pass",
        "invalid",
        "invalid",
    ]
    assert outcomes[0].result is outcomes[1].result
    assert outcomes[3].detail == "bias must be true or false, got 1"
    assert outcomes[4].detail == "name must be a string, got ['not', 'a', 'string']"

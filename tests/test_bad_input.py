"""Odd input never gives a traceback, a wrong answer or a wrong exit code.

Each case here was found by trying to break the command line; the expected
outcome is what a script or a CI job can rely on.
"""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from shapecalc import ShapeError, pool, rnn
from shapecalc.cli import app
from shapecalc.layers.common import quoted

runner = CliRunner()
CONV = ["conv", "--in-channels", "3", "--out-channels", "16", "--kernel-size", "3"]


def shapecalc(*args, **kwargs):
    """A real process, as a shell runs it."""
    return subprocess.run(
        [sys.executable, "-m", "shapecalc", *args],
        capture_output=True,
        text=True,
        check=False,
        **kwargs,
    )


def one_error_line(result, message):
    assert result.stderr == f"shapecalc: error: {message}\n"
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--input-shape", "1,3," + "9" * 30 + ",8"],
            "input_shape must be made of sizes that fit in int64, got '1,3,"
            "999999999999999999999999999999,8'",
        ),
        (
            ["--input-shape", "1,3," + "1" * 5000],
            "input_shape must be made of sizes that fit in int64, got "
            + quoted("1,3," + "1" * 5000),
        ),
        (
            ["--input-shape", "1,3,8,8", "--padding", "1,2,3"],
            "input must have 3 channels (in_channels) in dim 0 for Conv3d (3-D from "
            "padding=(1, 2, 3)), got (1, 3, 8, 8)".replace(
                "(1, 3, 8, 8)", "(1, 3, 8, 8)"
            ),
        ),
        (
            ["--input-shape", "1,3,8,8", "--stride", "1,1,1,1"],
            "stride must have 1 to 3 values (one per spatial dim), got 4",
        ),
        (
            ["--input-shape", "[1,3,8,8)"],
            "input_shape must be integers separated by ',' or 'x', got '[1,3,8,8)'",
        ),
        (
            ["--input-shape", "1,3,8,8", "--expect", "output=-2,16,6,6"],
            "expect must be made of sizes >= 0, * or -1 (any size), got '-2,16,6,6'",
        ),
    ],
)
def test_conv_input_errors(args, message):
    result = runner.invoke(app, [*CONV, *args])
    assert result.exit_code == 2
    one_error_line(result, message)


def test_parsing_is_fast_on_adversarial_separators():
    # nested repetition in a regex once made this take minutes
    result = shapecalc(
        *CONV,
        "--input-shape",
        "1,3,8,8",
        "--kernel-size",
        "1   " * 40 + "!",
        timeout=30,
    )
    assert result.returncode == 2


def test_negative_batch_is_refused():
    result = runner.invoke(
        app,
        [
            "rnn",
            "--input-size",
            "10",
            "--hidden-size",
            "5",
            "--seq-len",
            "3",
            "--batch",
            "-5",
        ],
    )
    assert result.exit_code == 2
    assert "-5 is not in the range x>=0" in result.stdout + result.stderr


def test_lstm_cell_refuses_nonlinearity_like_lstm():
    result = runner.invoke(
        app,
        [
            "rnn",
            "--mode",
            "lstm",
            "--cell",
            "--nonlinearity",
            "tanh",
            "--input-size",
            "3",
            "--hidden-size",
            "4",
        ],
    )
    assert result.exit_code == 2
    one_error_line(result, "--nonlinearity does not apply to nn.LSTMCell")


def test_every_expectation_on_one_tensor_is_checked():
    result = runner.invoke(
        app,
        [
            *CONV,
            "--input-shape",
            "8,3,32,32",
            "--format",
            "shape",
            "--expect",
            "output=1,1,1,1",
            "--expect",
            "output=8,16,30,30",
        ],
    )
    assert result.exit_code == 1
    assert "output expected (1, 1, 1, 1)" in result.stderr


def test_huge_shapes_print_a_whole_table():
    big = str(2**28)  # the output has about 2**60 elements: torch can make it
    result = runner.invoke(
        app,
        [*CONV, "--input-shape", f"1,3,{big},{big}", "--format", "table"],
        env={"COLUMNS": "300"},
    )
    assert result.exit_code == 0, result.stderr
    assert "TiB" in result.stdout and "cost:" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (
            [*CONV, "--input-shape", f"8,3,{2**31},{2**30}"],
            "input must have fewer than 2,305,843,009,213,693,952 elements (torch's "
            f"storage size overflows int64), got (8, 3, {2**31}, {2**30})",
        ),
        (
            "rnn --input-size 10 --hidden-size 4611686018427387904 --seq-len 3".split(),
            "weight_ih_l0 must have fewer than 2,305,843,009,213,693,952 elements "
            "(torch's storage size overflows int64), got (4611686018427387904, 10)",
        ),
        (
            "rnn --input-size 10 --hidden-size 5 --seq-len "
            "99999999999999999999".split(),
            "seq_len must be an integer that fits in int64, got 99999999999999999999",
        ),
        (
            "conv --in-channels 3 --out-channels 99999999999999999999 --kernel-size 3 "
            "--input-shape 1,3,5,5".split(),
            "out_channels must be an integer that fits in int64, got "
            "99999999999999999999",
        ),
        (
            "rnn --input-size 2 --hidden-size 2 --num-layers 100001 "
            "--seq-len 1".split(),
            "num_layers must be at most 100000, the most shapecalc describes (it "
            "lists every weight; torch needs minutes to build 50000 layers), got "
            "100001",
        ),
    ],
)
def test_sizes_beyond_what_torch_can_allocate(args, message):
    result = runner.invoke(app, [*args, "--format", "shape"])
    assert (result.exit_code, result.stdout) == (2, "")
    one_error_line(result, message)


def test_max_memory_with_hundreds_of_digits():
    result = runner.invoke(
        app,
        [
            *CONV,
            "--input-shape",
            "1,3,8,8",
            "--verify",
            "--device",
            "meta",
            "--max-memory",
            "9" * 400,
            "--format",
            "shape",
        ],
    )
    assert (result.exit_code, result.stdout) == (0, "1,16,6,6\n")


def test_usage_errors_under_json_still_print_a_json_object():
    result = shapecalc("conv", "--in-channels", "x", "--format", "json")
    assert result.returncode == 2
    assert json.loads(result.stdout) == {
        "error": "Invalid value for '--in-channels': 'x' is not a valid int.",
        "param": None,
    }


def test_closed_pipe_and_full_disk():
    pipe = subprocess.run(
        f"{sys.executable} -m shapecalc check examples/model.shapes.toml --format "
        "plain | head -c 0; echo ${PIPESTATUS[0]}",
        shell=True,
        executable="bash",
        capture_output=True,
        text=True,
        check=False,
    )
    assert pipe.stdout.strip() in ("0", "141")  # 0 when it all fit in the pipe
    assert "Traceback" not in pipe.stderr
    with open(os.devnull, "w") as devnull:
        closed = subprocess.run(
            [sys.executable, "-m", "shapecalc", *CONV, "--input-shape", "1,3,8,8"],
            stdout=devnull,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    assert (closed.returncode, closed.stderr) == (0, "")
    if os.path.exists("/dev/full"):
        with open("/dev/full", "w") as full:
            proc = subprocess.run(
                [sys.executable, "-m", "shapecalc", *CONV, "--input-shape", "1,3,8,8"],
                stdout=full,
                stderr=subprocess.PIPE,
                text=True,
                check=False,
            )
        assert proc.returncode == 2
        assert proc.stderr.startswith("shapecalc: error: cannot write the output:")


def test_a_broken_torch_install_exits_3(tmp_path):
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("raise OSError('libtorch.so')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    result = shapecalc(*CONV, "--input-shape", "1,3,8,8", "--verify", env=env)
    assert result.returncode == 3
    assert result.stderr == (
        "shapecalc: error: torch could not be imported: OSError: libtorch.so\n"
    )


SPECS = [
    ('{"layer": [1, "x", null]}', ["an entry must be a table of parameters"] * 3),
    ("5", ["a spec must list its entries under 'layer'"]),
    ('{"layer": [{"type": ["Conv2d"], "input_shape": [1]}]}', ["type must be one of"]),
    ("[" * 100000 + "]" * 100000, ["invalid JSON: maximum recursion depth"]),
    (
        '{"layer": [{"type": "GRU", "input_size": ' + "1" * 5000 + "}]}",
        ["invalid JSON: Exceeds the limit (4300 digits)"],
    ),
]


@pytest.mark.parametrize("text, details", SPECS, ids=range(len(SPECS)))
def test_malformed_json_specs_are_invalid_not_tracebacks(tmp_path, text, details):
    path = tmp_path / "s.json"
    path.write_text(text)
    result = runner.invoke(app, ["check", str(path), "--format", "json"])
    assert result.exit_code == 2
    entries = json.loads(result.stdout)["entries"]
    assert [e["status"] for e in entries] == ["invalid"] * len(details)
    for entry, detail in zip(entries, details):
        assert detail in entry["detail"]


def test_binary_garbage_is_not_utf8(tmp_path):
    path = tmp_path / "g.toml"
    path.write_bytes(bytes(range(128, 256)))
    result = runner.invoke(app, ["check", str(path), "--format", "plain"])
    assert result.exit_code == 2
    assert "cannot read: not UTF-8 text" in result.stdout


TOML_ENTRIES = [
    ('type = "Conv2d"\ndims = 3', "dims is not a parameter of Conv2d"),
    ('type = "Conv2d"\ntransposed = true', "transposed is not a parameter of Conv2d"),
    ('type = "RNN"\nmode = "lstm"', "mode is not a parameter of RNN"),
    ('type = "MaxPool2d"\nkind = "avg"', "kind is not a parameter of MaxPool2d"),
    (
        'type = "Conv2d"\nin_channels = 3.0',
        "in_channels must be an integer or a list of integers, got 3.0",
    ),
    (
        'type = "Conv2d"\nkernel_size = true',
        "kernel_size must be an integer or a list of integers, got True",
    ),
    ('type = "LSTM"\nbias = 1', "bias must be true or false, got 1"),
    ('type = "RNN"\ndropout = "0.5"', "dropout must be a number, got '0.5'"),
    (
        'type = "GRU"\ninput_shape = "1,10"',
        "input_shape must be a list of integers, got '1,10'",
    ),
]


@pytest.mark.parametrize("body, detail", TOML_ENTRIES)
def test_spec_values_of_the_wrong_type(tmp_path, body, detail):
    path = tmp_path / "t.toml"
    path.write_text(
        f"[[layer]]\n{body}\ninput_shape = [1, 3, 8, 8]\n"
        if "input_shape" not in body
        else f"[[layer]]\n{body}\n"
    )
    result = runner.invoke(app, ["check", str(path), "--format", "plain"])
    assert result.exit_code == 2
    assert result.stdout.rstrip("\n").split("\t")[3:] == ["invalid", detail]


def test_names_cannot_forge_lines_markup_or_xml(tmp_path):
    path = tmp_path / "n.json"
    forged = "a\nfake.toml\tx\tConv2d\tpass\x1b[31m"
    path.write_text(
        json.dumps(
            {
                "layer": [
                    {
                        "name": forged,
                        "type": "Conv1d",
                        "in_channels": 1,
                        "out_channels": 1,
                        "kernel_size": 1,
                        "input_shape": [1, 1, 4],
                    },
                    {"name": "[/bold]", "type": "Nope", "input_shape": [1]},
                ]
            }
        )
    )
    plain = runner.invoke(app, ["check", str(path), "--format", "plain"])
    assert len(plain.stdout.splitlines()) == 2
    assert "a\\nfake.toml\\tx\\tConv2d\\tpass\\x1b[31m" in plain.stdout
    table = runner.invoke(
        app, ["check", str(path), "--format", "table"], env={"COLUMNS": "300"}
    )
    assert table.exit_code == 2 and "[/bold]" in table.stdout
    xml = tmp_path / "r.xml"
    runner.invoke(app, ["check", str(path), "--junit-xml", str(xml)])
    assert ET.parse(xml).getroot().get("tests") == "2"


def test_junit_xml_into_a_directory_fails_before_the_run(tmp_path):
    result = runner.invoke(
        app,
        [
            "check",
            "examples/model.shapes.toml",
            "--junit-xml",
            str(tmp_path),
            "--format",
            "plain",
        ],
    )
    assert (result.exit_code, result.stdout) == (2, "")
    assert "junit_xml must be a writable file" in result.stderr


def test_bad_device_for_check_is_one_error_not_one_per_entry():
    result = runner.invoke(
        app,
        [
            "check",
            "examples/model.shapes.toml",
            "--verify",
            "--device",
            "tpu",
            "--format",
            "plain",
        ],
    )
    assert (result.exit_code, result.stdout) == (2, "")
    one_error_line(result, "device must be cpu, cuda, cuda:N or meta, got 'tpu'")


# Found by a second attempt to break the command line.
SMALL = [*CONV, "--input-shape", "1,3,8,8"]


def test_closed_stdout_is_one_line_and_exit_2():
    proc = subprocess.run(
        f"'{sys.executable}' -m shapecalc {' '.join(SMALL)} --format plain >&-",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (proc.returncode, proc.stderr) == (
        2,
        "shapecalc: error: cannot write the output: stdout is closed\n",
    )


def test_closed_stderr_keeps_json_clean():
    proc = subprocess.run(
        f"'{sys.executable}' -m shapecalc {' '.join(CONV)} --input-shape 1,3,2,2 "
        "--format json 2>&-",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["param"] == "kernel_size"


@pytest.mark.parametrize(
    "args",
    [
        ["-fjson", "--bogus"],
        ["--format=json", "--bogus"],
        ["--format", "plain", "--format", "json", "--bogus"],
    ],
)
def test_usage_errors_find_json_however_it_is_asked_for(args):
    result = shapecalc(*SMALL, *args)
    assert result.returncode == 2
    assert json.loads(result.stdout)["error"].startswith("No such option: --bogus")


def test_usage_errors_under_the_last_format_given():
    result = shapecalc(*SMALL, "--format", "json", "--format", "plain", "--bogus")
    assert (result.returncode, result.stdout) == (2, "")


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--device", "bogus"],
            "device must be cpu, cuda, cuda:N or meta, got 'bogus'",
        ),
        (
            ["--max-memory", "lots"],
            "max_memory must be a size such as 2GiB, 512MiB or 1000000, got 'lots'",
        ),
    ],
)
def test_verify_options_are_checked_without_verify(args, message):
    result = runner.invoke(app, [*SMALL, "--format", "shape", *args])
    assert (result.exit_code, result.stdout) == (2, "")
    one_error_line(result, message)


@pytest.mark.parametrize("digits", ["9" * 5000, "0." + "9" * 5000])
def test_max_memory_with_thousands_of_digits(digits):
    result = runner.invoke(app, [*SMALL, "--verify", "--max-memory", digits])
    assert result.exit_code in (0, 2)
    assert "internal error" not in result.stderr


def test_empty_junit_path_is_refused():
    result = runner.invoke(
        app, ["check", "examples/model.shapes.toml", "--junit-xml", ""]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("shapecalc: error: junit_xml must be a writable")


@pytest.mark.parametrize(
    "entry, detail",
    [
        (
            {"expect": {"output": [True, 2, 2]}},
            "expect.output must be a list of sizes, * or -1 for any, got [True, 2, 2]",
        ),
        ({"expect": []}, "expect must be a table of NAME = SHAPE, got []"),
        ({"name": ["x"]}, "name must be a string, got ['x']"),
    ],
)
def test_spec_entries_refuse_odd_expectations_and_names(entry, detail):
    spec = {
        "layer": [
            {
                "type": "GRU",
                "input_size": 2,
                "hidden_size": 2,
                "input_shape": [1, 2],
            }
            | entry
        ]
    }
    result = runner.invoke(
        app, ["check", "-", "--format", "json"], input=json.dumps(spec)
    )
    assert result.exit_code == 2
    assert json.loads(result.stdout)["entries"][0]["detail"] == detail


def test_spec_json_refuses_a_key_given_twice():
    text = '{"layer": [{"type": "GRU", "type": "LSTM", "input_shape": [1, 2]}]}'
    result = runner.invoke(app, ["check", "-", "--format", "plain"], input=text)
    assert result.exit_code == 2
    assert result.stdout.endswith("invalid JSON: duplicate key 'type'\n")


@pytest.mark.parametrize(
    "args, code, stderr",
    [
        (
            ["--expect", "output=1x*x6x6", "--expect", "output=*x*x*x*"],
            0,
            "",
        ),
        (
            ["--expect", "bias=1"],
            1,
            "shapecalc: expectation failed: bias expected (1,), computed (16,)\n",
        ),
    ],
)
def test_expect_patterns_read_like_shapes(args, code, stderr):
    result = runner.invoke(app, [*SMALL, "--format", "shape", *args])
    assert (result.exit_code, result.stderr) == (code, stderr)


def test_adaptive_output_size_errors_quote_the_whole_value():
    result = runner.invoke(
        app,
        "pool --kind adaptive-avg --output-size".split()
        + ["none x 3", "--dims", "2", "--input-shape", "1,2,4,4"],
    )
    assert result.exit_code == 2
    one_error_line(
        result,
        "output_size must be sizes or none separated by ',', got 'none x 3'",
    )


def test_a_huge_rank_is_cut_short_in_the_message():
    shape = ",".join(["1"] * 50_001)
    result = runner.invoke(app, [*CONV, "--input-shape", shape])
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert len(line) < 1000 and " ... " in line


# Found by a third attempt, against the rules added after the second.
@pytest.mark.parametrize(
    "args, message",
    [
        (
            "conv --transposed --in-channels 2 --out-channels 2 --kernel-size 3 "
            "--stride 2, --input-shape 1,2,4,4 --output-size 9,9".split(),
            "stride must be 2 values (or one int) when output_size is given, got (2,)",
        ),
        (
            "pool --kind max --kernel-size 1 --dims 2 --input-shape "
            "1,1,1073741824,1073741824".split(),
            "output must have fewer than 1,152,921,504,606,846,976 elements "
            "(MaxPool2d also builds int64 indices of its shape, even without "
            "return_indices), got (1, 1, 1073741824, 1073741824)",
        ),
        (
            "conv --in-channels 1 --out-channels 1 --kernel-size 3 --stride "
            "1099511627776 --padding 2147483648 --padding-mode replicate --dims 2 "
            "--input-shape 1,1,8,8".split(),
            "padding must leave a padded input of fewer than "
            "2,305,843,009,213,693,952 elements (padding_mode='replicate' pads a "
            "copy of the input first), got (1, 1, 4294967304, 4294967304)",
        ),
    ],
)
def test_what_torch_refuses_beyond_the_plain_rules(args, message):
    result = runner.invoke(app, [*args, "--format", "shape"])
    assert (result.exit_code, result.stdout) == (2, "")
    one_error_line(result, message)


def test_max_pool_1d_builds_no_hidden_indices():
    big = str(2**60)  # float32 output fits; int64 indices would not
    result = runner.invoke(
        app,
        [
            "pool",
            "--kind",
            "max",
            "--kernel-size",
            "1",
            "--dims",
            "1",
            "--input-shape",
            f"1,{big}",
            "--format",
            "shape",
        ],
    )
    assert (result.exit_code, result.stdout) == (0, f"1,{big}\n")


def test_spec_null_is_the_default_where_torch_takes_none():
    spec = {
        "layer": [
            {
                "type": "AvgPool2d",
                "kernel_size": 2,
                "stride": None,
                "divisor_override": None,
                "input_shape": [1, 4, 4],
            },
            {
                "type": "Conv2d",
                "in_channels": 1,
                "out_channels": 1,
                "kernel_size": 1,
                "stride": None,
                "input_shape": [1, 4, 4],
            },
        ]
    }
    result = runner.invoke(
        app, ["check", "-", "--format", "json"], input=json.dumps(spec)
    )
    entries = json.loads(result.stdout)["entries"]
    assert [e["status"] for e in entries] == ["pass", "invalid"]
    assert entries[0]["shapes"]["output"] == [1, 2, 2]
    assert entries[1]["detail"] == (
        "stride must be an integer or a tuple of integers, got None"
    )


def test_json_writes_an_infinite_norm_type_as_a_string():
    result = runner.invoke(
        app,
        "pool --kind lp --norm-type inf --kernel-size 2 --dims 1 --input-shape 1,3,8 "
        "--format json".split(),
    )
    assert "Infinity" not in result.stdout
    assert json.loads(result.stdout)["params"]["norm_type"] == "inf"


def test_int64_includes_its_lowest_value():
    with pytest.raises(ShapeError, match="^divisor_override must be nonzero"):
        pool((1, 4, 4), "avg", kernel_size=2, divisor_override=0, dims=2)
    result = pool((1, 4, 4), "avg", kernel_size=2, divisor_override=-(2**63), dims=2)
    assert result.shapes["output"] == (1, 2, 2)


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: rnn((2, 3), 3, 4, bidirectional="no"),
            "bidirectional must be True or False, got 'no'",
        ),
        (
            lambda: pool((1, 2, 5, 5), "max", kernel_size=2, dims=2, ceil_mode=None),
            "ceil_mode must be True or False, got None",
        ),
    ],
)
def test_api_flags_must_be_booleans(call, message):
    with pytest.raises(ShapeError) as info:
        call()
    assert str(info.value) == message

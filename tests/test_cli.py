"""The command line: exit codes, output formats, errors, --expect, --verify."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from shapecalc.cli import app
from tests.conftest import TORCH, needs_cuda, needs_torch

runner = CliRunner()
CONV = [
    "conv",
    "--in-channels",
    "3",
    "--out-channels",
    "16",
    "--kernel-size",
    "3",
    "--stride",
    "2",
    "--padding",
    "1",
    "--input-shape",
    "8,3,224,224",
]
LSTM = [
    "rnn",
    "--mode",
    "lstm",
    "--input-size",
    "10",
    "--hidden-size",
    "20",
    "--proj-size",
    "5",
    "--num-layers",
    "2",
    "--seq-len",
    "7",
    "--batch",
    "3",
]


def invoke(*args):
    return runner.invoke(app, list(args))


def test_plain_format_lists_every_tensor():
    result = invoke(*LSTM, "--format", "plain")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "input\t7,3,10",
        "h_0\t2,3,5",
        "c_0\t2,3,20",
        "output\t7,3,5",
        "h_n\t2,3,5",
        "c_n\t2,3,20",
    ]


def test_shape_format_prints_the_output_alone():
    result = invoke(*CONV, "--format", "shape")
    assert (result.exit_code, result.stdout) == (0, "8,16,112,112\n")


def test_piped_output_defaults_to_plain():
    # CliRunner's stdout is not a terminal, as in a shell pipeline
    assert invoke(*CONV).stdout == invoke(*CONV, "--format", "plain").stdout


def test_json_has_the_documented_keys():
    result = invoke(*LSTM, "--format", "json")
    data = json.loads(result.stdout)
    assert data["layer"] == "LSTM"
    assert data["params"] == {
        "input_size": 10,
        "hidden_size": 20,
        "num_layers": 2,
        "bias": True,
        "batch_first": False,
        "dropout": 0.0,
        "bidirectional": False,
        "proj_size": 5,
    }
    assert data["shapes"]["c_n"] == [2, 3, 20]
    assert data["parameters"] == 4 * 20 * (10 + 5) + 4 * 20 * (5 + 5) + 2 * (
        2 * 80 + 5 * 20
    )
    assert data["verified"] is None
    assert data["expect"] is None
    assert data["symbols"] == {
        "N": 3,
        "L": 7,
        "H_in": 10,
        "D": 1,
        "num_layers": 2,
        "H_out": 5,
        "H_cell": 20,
    }


def test_json_symbols_include_the_output_sizes():
    data = json.loads(invoke(*CONV, "--format", "json").stdout)
    assert data["symbols"] == {
        "N": 8,
        "C_in": 3,
        "C_out": 16,
        "groups": 1,
        "H_out": 112,
        "W_out": 112,
    }


@pytest.mark.parametrize(
    "expect, code, recorded",
    [
        ("output=8,16,112,112", 0, {"ok": True, "failures": []}),
        (
            "output=8,16,*,111",
            1,
            {
                "ok": False,
                "failures": [
                    "output expected (8, 16, *, 111), computed (8, 16, 112, 112)"
                ],
            },
        ),
    ],
)
def test_json_records_the_expectations(expect, code, recorded):
    result = invoke(*CONV, "--format", "json", "--expect", expect)
    assert result.exit_code == code
    assert json.loads(result.stdout)["expect"] == recorded


@pytest.mark.parametrize("fmt", ["plain", "shape"])
def test_explain_in_machine_formats_goes_to_stderr(fmt):
    result = invoke(*CONV, "--format", fmt, "--explain")
    assert result.stdout == invoke(*CONV, "--format", fmt).stdout
    assert result.stderr.splitlines() == [
        "shapecalc: H_out = floor((H_in + 2*padding[0] - dilation[0]*(kernel_size[0]"
        "-1) - 1)/stride[0] + 1) = floor((224 + 2*1 - 1*(3-1) - 1)/2 + 1) = 112",
        "shapecalc: W_out = floor((W_in + 2*padding[1] - dilation[1]*(kernel_size[1]"
        "-1) - 1)/stride[1] + 1) = floor((224 + 2*1 - 1*(3-1) - 1)/2 + 1) = 112",
    ]


def test_table_shows_shapes_formulas_and_parameters():
    result = invoke(*CONV, "--format", "table")
    assert result.exit_code == 0
    out = result.stdout
    assert "Conv2d(3, 16, (3, 3), stride=(2, 2), padding=(1, 1))" in out
    assert "(8, 16, 112, 112)" in out and "(N, C_out, H_out, W_out)" in out
    assert (
        "where N = 8, C_in = 3, C_out = 16, groups = 1, H_out = 112, W_out = 112" in out
    )
    assert "parameters: 448" in out
    assert (
        "cost: 43,352,064 MACs (whole batch, bias not counted); float32 memory: "
        "inputs 4.6 MiB, outputs 6.1 MiB, parameters 1.8 KiB" in out
    )
    assert "floor(" not in out  # the arithmetic is for --explain


def test_explain_works_each_output_dim_out():
    result = runner.invoke(
        app, [*CONV, "--format", "table", "--explain"], env={"COLUMNS": "200"}
    )
    assert (
        "H_out = floor((H_in + 2*padding[0] - dilation[0]*(kernel_size[0]-1) - 1)"
        "/stride[0] + 1)\n"
        "      = floor((224 + 2*1 - 1*(3-1) - 1)/2 + 1)\n"
        "      = 112\n"
    ) in result.stdout


def test_explain_in_json_gives_structured_steps():
    result = invoke(*LSTM, "--bidirectional", "--format", "json", "--explain")
    steps = {s["name"]: s for s in json.loads(result.stdout)["explain"]}
    assert steps["rows of h_0, h_n"] == {
        "name": "rows of h_0, h_n",
        "formula": "D*num_layers",
        "arithmetic": "2*2",
        "value": 4,
        "note": "",
    }
    assert steps["H_out"]["arithmetic"] == "proj_size=5"
    assert "explain" not in json.loads(invoke(*LSTM, "--format", "json").stdout)


def test_explain_on_a_rejected_configuration_shows_the_broken_rule():
    result = invoke(
        "conv",
        "--in-channels",
        "3",
        "--out-channels",
        "4",
        "--kernel-size",
        "5",
        "--input-shape",
        "1,3,4,4",
        "--explain",
    )
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "shapecalc: error: kernel_size must fit the padded input, got "
        "dilation*(kernel_size-1)+1 = 1*(5-1)+1 = 5 > input 4 + padding 0 = 4 in "
        "spatial dim 0",
        "  padded input = H_in + 2*padding[0] = 4 + 2*0 = 4",
        "  effective kernel = dilation[0]*(kernel_size[0]-1)+1 = 1*(5-1)+1 = 5",
    ]


@pytest.mark.parametrize("dtype, inputs", [("float16", 2), ("float64", 8)])
def test_cost_in_json_follows_dtype(dtype, inputs):
    data = json.loads(invoke(*CONV, "--format", "json", "--dtype", dtype).stdout)
    assert data["cost"] == {
        "parameters": 448,
        "macs": 43352064,
        "dtype": dtype,
        "bytes": {
            "inputs": 8 * 3 * 224 * 224 * inputs,
            "outputs": 8 * 16 * 112 * 112 * inputs,
            "parameters": 448 * inputs,
        },
    }


def test_pool_command():
    result = invoke(
        "pool",
        "--kind",
        "max",
        "--kernel-size",
        "3",
        "--stride",
        "2",
        "--padding",
        "1",
        "--dims",
        "2",
        "--input-shape",
        "8,64,112,112",
        "--return-indices",
        "--format",
        "plain",
    )
    assert (result.exit_code, result.stdout) == (
        0,
        "input\t8,64,112,112\noutput\t8,64,56,56\nindices\t8,64,56,56\n",
    )


@pytest.mark.parametrize(
    "size, shape",
    [("7,none", "8,64,7,9"), ("7", "8,64,7,7"), ("(3, None)", "8,64,3,9")],
)
def test_pool_adaptive_output_size(size, shape):
    result = invoke(
        "pool",
        "--kind",
        "adaptive-avg",
        "--output-size",
        size,
        "--dims",
        "2",
        "--input-shape",
        "8,64,13,9",
        "--format",
        "shape",
    )
    assert (result.exit_code, result.stdout) == (0, shape + "\n")


def test_pool_rejection_is_one_line():
    result = invoke(
        "pool",
        "--kind",
        "avg",
        "--kernel-size",
        "3",
        "--padding",
        "2",
        "--dims",
        "2",
        "--input-shape",
        "8,64,13,9",
    )
    assert (result.exit_code, result.stderr) == (
        2,
        "shapecalc: error: padding must be at most half of kernel_size, "
        "3//2 = 1 in spatial dim 0, got 2\n",
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (
            [
                "rnn",
                "--input-size",
                "10",
                "--hidden-size",
                "5",
                "--input-shape",
                "12,64,9",
            ],
            "input must have input_size=10 features in its last dim, got (12, 64, 9)",
        ),
        (
            [
                "rnn",
                "--input-size",
                "10",
                "--hidden-size",
                "5",
                "--seq-len",
                "3",
                "--batch",
                "2",
                "--hx-shape",
                "1,5",
            ],
            "h_0 must be (1, 2, 5) for this batched input, got (1, 5)",
        ),
        (
            [
                "rnn",
                "--input-size",
                "10",
                "--hidden-size",
                "5",
                "--cell",
                "--num-layers",
                "2",
                "--batch",
                "2",
            ],
            "--num-layers does not apply to nn.RNNCell",
        ),
        (
            [
                "rnn",
                "--mode",
                "gru",
                "--input-size",
                "10",
                "--hidden-size",
                "5",
                "--nonlinearity",
                "relu",
                "--seq-len",
                "3",
            ],
            "--nonlinearity does not apply to nn.GRU",
        ),
        (
            ["rnn", "--input-size", "10", "--hidden-size", "5"],
            "give --input-shape, or --seq-len (and --batch for a batched input)",
        ),
        (
            [
                "conv",
                "--in-channels",
                "3",
                "--out-channels",
                "16",
                "--kernel-size",
                "3",
                "--padding",
                "same",
                "--stride",
                "2",
                "--input-shape",
                "1,3,8,8",
            ],
            "stride must be 1 in every dim when padding='same', got (2, 2)",
        ),
        (
            [
                "conv",
                "--in-channels",
                "3",
                "--out-channels",
                "16",
                "--kernel-size",
                "3",
                "--output-padding",
                "1",
                "--input-shape",
                "1,3,8,8",
            ],
            "--output-padding does not apply to nn.Conv (only with --transposed)",
        ),
        (
            # torch's GRU refuses proj_size even at its default
            "rnn --mode gru --input-size 10 --hidden-size 5 --proj-size 0 "
            "--seq-len 3".split(),
            "--proj-size does not apply to nn.GRU",
        ),
        (
            "pool --kind max --kernel-size 2 --count-include-pad --dims 1 "
            "--input-shape 1,4".split(),
            "--count-include-pad does not apply to nn.MaxPool",
        ),
        (
            [
                "conv",
                "--in-channels",
                "3",
                "--out-channels",
                "16",
                "--kernel-size",
                "3",
                "--input-shape",
                "3,3,8",
            ],
            "dims is ambiguous for input (3, 3, 8) with in_channels=3: it could be 1-D "
            "(batched) or 2-D (unbatched); give dims (--dims)",
        ),
        (
            [
                "conv",
                "--in-channels",
                "3",
                "--out-channels",
                "16",
                "--kernel-size",
                "3x",
                "--input-shape",
                "1,3,8,8",
            ],
            "kernel_size must be integers separated by ',' or 'x', got '3x'",
        ),
    ],
)
def test_invalid_configuration_is_one_line_and_exit_2(args, message):
    result = invoke(*args)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"shapecalc: error: {message}\n"


def test_invalid_configuration_in_json_prints_an_error_object():
    # no dim reading puts 3 channels anywhere: read as batched, like torch
    result = invoke(*CONV[:-1], "8,4,224,224", "--format", "json")
    assert result.exit_code == 2
    assert json.loads(result.stdout) == {
        "error": "input must have 3 channels (in_channels) in dim 1 for Conv2d, "
        "got (8, 4, 224, 224)",
        "param": "input",
    }


def test_dropout_with_one_layer_warns_and_answers():
    result = invoke(
        "rnn",
        "--input-size",
        "4",
        "--hidden-size",
        "3",
        "--dropout",
        "0.5",
        "--seq-len",
        "2",
        "--format",
        "shape",
    )
    assert (result.exit_code, result.stdout) == (0, "2,3\n")
    assert result.stderr.startswith("shapecalc: warning: dropout option adds dropout")


@pytest.mark.parametrize(
    "expect, code, stderr",
    [
        (["output=8,16,112,112"], 0, ""),
        (["output=8,*,112,-1", "weight=16,3,3,3"], 0, ""),
        (
            ["output=8,16,112,111"],
            1,
            "shapecalc: expectation failed: output expected (8, 16, 112, 111), "
            "computed (8, 16, 112, 112)\n",
        ),
        (
            ["output=8,16,112"],
            1,
            "shapecalc: expectation failed: output expected (8, 16, 112), computed "
            "(8, 16, 112, 112)\n",
        ),
        (
            ["h_n=1,2,3"],
            2,
            "shapecalc: error: expect must name a tensor of Conv2d (input, weight, "
            "bias, output), got 'h_n'\n",
        ),
        (["output"], 2, "shapecalc: error: expect must be NAME=SHAPE, got 'output'\n"),
    ],
)
def test_expect(expect, code, stderr):
    args = [a for e in expect for a in ("--expect", e)]
    result = invoke(*CONV, "--format", "shape", *args)
    assert (result.exit_code, result.stderr) == (code, stderr)


def test_max_memory_refuses_a_big_cpu_verification():
    result = invoke(*CONV, "--verify", "--max-memory", "1MiB")
    assert result.exit_code == 2
    assert "use --device meta to verify any size without allocating" in result.stderr


def test_verify_without_torch_exits_3(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now fails
    result = invoke(*CONV, "--verify", "--format", "json")
    assert result.exit_code == 3
    assert result.stderr == (
        "shapecalc: error: torch is not installed; --verify needs it: pip install "
        "torch (from a shapecalc checkout: pip install -c constraints.txt -e "
        "'.[torch]')\n"
    )


@needs_torch
@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_verify_agrees_in_json(device):
    result = invoke(*LSTM, "--verify", "--device", device, "--format", "json")
    assert result.exit_code == 0, result.stderr
    verified = json.loads(result.stdout)["verified"]
    assert verified["ok"] is True and verified["device"] == device
    assert verified["shapes"]["c_n"] == [2, 3, 20]
    assert (verified["note"] is None) == (device == "cpu")


@needs_torch
def test_verify_reports_a_mismatch_with_exit_1(monkeypatch):
    from shapecalc.layers import conv as conv_module

    real = conv_module._forward

    def off_by_one(*args):
        outs, lines = real(*args)
        return tuple(o + 1 for o in outs), lines

    monkeypatch.setattr(conv_module, "_forward", off_by_one)
    result = runner.invoke(
        app, [*CONV, "--verify", "--format", "table"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 1
    assert "✗ (8, 16, 112, 112)" in result.stdout
    assert "verification failed: torch returned other shapes" in result.stderr


@pytest.mark.skipif(
    TORCH is not None and TORCH.cuda.is_available(), reason="a CUDA GPU is present"
)
@needs_torch
def test_verify_on_missing_cuda_exits_3():
    result = invoke(*CONV, "--verify", "--device", "cuda")
    assert result.exit_code == 3
    assert result.stderr == (
        "shapecalc: error: device cuda is unavailable: torch sees no CUDA GPU here\n"
    )


@needs_cuda
@pytest.mark.parametrize("args", [CONV, LSTM])
def test_verify_on_cuda(args):
    result = invoke(*args, "--verify", "--device", "cuda:0", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["verified"]["ok"] is True


def test_usage_errors_are_one_line_in_a_real_process():
    proc = subprocess.run(
        [sys.executable, "-m", "shapecalc", *CONV, "--padding-mode", "mirror"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (
        "shapecalc: error: Invalid value for '--padding-mode': 'mirror' is not one "
        "of 'zeros', 'reflect', 'replicate', 'circular'.\n"
    )


def test_version():
    from shapecalc import __version__

    proc = subprocess.run(
        [sys.executable, "-m", "shapecalc", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (proc.returncode, proc.stdout) == (0, f"shapecalc {__version__}\n")


@pytest.mark.parametrize("command", ["rnn", "conv", "pool", "check"])
def test_help_documents_every_option_and_the_exit_codes(command):
    import typer.main

    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    click_command = typer.main.get_command(app).commands[command]
    for param in click_command.params:
        if param.param_type_name != "option":
            continue
        assert param.opts[0] in result.stdout, param.opts[0]
        assert param.help, f"{command} {param.opts[0]} has no help"
        # a default is shown unless there is none, or the help text states it
        if param.show_default is not False and not param.is_flag:
            assert param.default is None or "[default:" in result.stdout
    top = runner.invoke(app, ["--help"], env={"COLUMNS": "200"}).stdout
    assert "2 invalid input or configuration" in top


def test_bare_command_shows_help_without_an_empty_error_line():
    proc = subprocess.run(
        [sys.executable, "-m", "shapecalc"], capture_output=True, text=True, check=False
    )
    assert "Usage: shapecalc" in proc.stdout
    assert "error" not in proc.stderr


@needs_torch
def test_plain_verify_says_on_stderr_that_it_ran():
    result = invoke(*CONV, "--verify", "--device", "meta", "--format", "shape")
    assert (result.exit_code, result.stdout) == (0, "8,16,112,112\n")
    assert result.stderr.splitlines()[0] == (
        "shapecalc: verified on meta: every shape agrees with torch"
    )


def test_mode_and_input_shape_in_torch_spelling():
    result = invoke(
        "rnn",
        "--mode",
        "LSTM",
        "--input-size",
        "10",
        "--hidden-size",
        "5",
        "--input-shape",
        "torch.Size([12, 64, 10])",
        "-f",
        "shape",
    )
    assert (result.exit_code, result.stdout) == (0, "12,64,5\n")


def test_device_without_verify_is_a_warning():
    result = invoke(*CONV, "--device", "meta", "--format", "shape")
    assert (result.exit_code, result.stdout) == (0, "8,16,112,112\n")
    assert result.stderr == (
        "shapecalc: warning: --device and --max-memory have no effect without "
        "--verify\n"
    )


@pytest.mark.parametrize("fmt", ["json", "plain", "shape"])
def test_a_query_in_a_machine_format_imports_no_heavy_module(fmt):
    # start-up is a feature: torch, numpy, rich and the verify module (with
    # fractions and decimal) stay out of a plain shape query
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "shapecalc", *CONV, "-f", fmt],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines()}
    packages = {name.split(".")[0] for name in imported}
    assert not {"torch", "numpy", "rich", "decimal"} & packages
    assert "shapecalc.verify" not in imported


@pytest.mark.parametrize("command", [[], ["rnn"], ["conv"], ["pool"], ["check"]])
def test_every_help_states_the_exit_codes(command):
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "Exit codes: 0 success; 1 a check failed" in text
    assert "3 verification could not run" in text

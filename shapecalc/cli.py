"""The command line: options in, one core call, one render out. No math here."""

import gc
import json
import os
import re
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Annotated

import typer

from . import __version__
from .expect import Pattern
from .expect import check as check_expect
from .layers.common import (
    Dtype,
    LayerResult,
    ShapeError,
    as_int,
    parse_int_or_tuple,
    parse_ints,
    parse_shape,
    quoted,
    split_tokens,
)
from .layers.conv import PaddingMode, conv
from .layers.pool import CLASS as POOL_CLASSES
from .layers.pool import PoolKind, pool
from .layers.pool import torch_args as pool_args
from .layers.rnn import NAMES as RNN_NAMES
from .layers.rnn import Mode, Nonlinearity, rnn, rnn_cell
from .layers.rnn import torch_args as rnn_args
from .render import Format

EXIT_CODES = """Exit codes: 0 success; 1 a check failed (a --verify mismatch or an
--expect that does not hold); 2 invalid input or configuration (torch would
reject it); 3 verification could not run (torch missing, device unavailable)."""
MACS = """MACs (multiply-adds) count one forward pass of the whole batch (N=1 for an
unbatched input), one per weight tap. Bias additions, activations, gate products
and pooling comparisons are not counted (pooling: 0). A conv counts
C_in/groups*prod(kernel_size) per output element, a transposed conv
C_out/groups*prod(kernel_size) per input element; a recurrent layer every weight
matrix (weight_ih, weight_hh, an LSTM projection's weight_hr) once per step and
sample."""

app = typer.Typer(
    help="Tensor shapes of PyTorch layers, computed before the code is written.\n\n"
    + " ".join(EXIT_CODES.split())
    + "\n\n"
    + " ".join(MACS.split()),
    no_args_is_help=True,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

LAYER, INPUT, OUTPUT, CHECK = "Layer", "Input", "Output", "Checks"


def option(panel: str, *param_decls: str, **kwargs):
    """A typer option listed under one of the help panels above."""
    return typer.Option(*param_decls, rich_help_panel=panel, **kwargs)


DEVICES = ["cpu", "cuda", "meta"]
DEVICE, MAX_MEMORY = "cpu", "2GiB"  # the defaults of --device and --max-memory


def _version(value: bool) -> None:
    if value:
        print(f"shapecalc {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Tensor shapes of PyTorch layers."""


def format_option(help: str):
    """--format, with what each format prints for the command at hand."""
    return Annotated[
        Format | None,
        option(
            OUTPUT,
            "--format",
            "-f",
            case_sensitive=False,
            help=help + " Default: table on a terminal, plain when stdout is piped.",
            show_default=False,
        ),
    ]


# Options shared by every layer command.
FormatOpt = format_option(
    "table for people; json (one object), plain (name<TAB>shape lines) or shape "
    "(the output shape alone) for scripts."
)
ExpectOpt = Annotated[
    list[str] | None,
    option(
        CHECK,
        "--expect",
        metavar="NAME=SHAPE",
        show_default=False,
        help="Exit 1 unless tensor NAME has SHAPE (e.g. output=8,16,112,112; * or -1 "
        "matches any size). Repeatable.",
    ),
]
VerifyOpt = Annotated[
    bool,
    option(
        CHECK,
        "--verify/--no-verify",
        help="Build the real torch module, run one forward pass and compare every "
        "shape (needs torch).",
    ),
]
DeviceOpt = Annotated[
    str,
    option(
        CHECK,
        "--device",
        autocompletion=lambda: DEVICES,
        help="Where --verify runs: cpu, cuda, cuda:N, or meta (shapes only, "
        "no memory).",
    ),
]
MaxMemoryOpt = Annotated[
    str,
    option(
        CHECK,
        "--max-memory",
        help="Refuse to --verify on cpu/cuda when the tensors need more than this: "
        "bytes, or with a unit, KiB/MiB/GiB (or K/M/G) in powers of 1024, KB/MB/GB "
        "in powers of 1000 (e.g. 2GiB, 512MiB, 1000000).",
    ),
]
ExplainOpt = Annotated[
    bool,
    option(
        OUTPUT,
        "--explain/--no-explain",
        help="Work out each output size with your numbers (and, for a rejected "
        "configuration, the arithmetic that breaks the rule).",
    ),
]
DtypeOpt = Annotated[
    Dtype,
    option(
        OUTPUT,
        case_sensitive=False,
        help="Element type for the memory figures of the cost line (how MACs "
        "are counted: shapecalc --help).",
    ),
]


@dataclass(frozen=True)
class Options:
    """What every layer command takes besides the layer itself."""

    fmt: Format | None
    expect: list[str] | None
    verify: bool
    device: str
    max_memory: str
    explain: bool
    dtype: Dtype


@app.command("rnn", epilog=" ".join(EXIT_CODES.split()))
def rnn_command(
    ctx: typer.Context,
    input_size: Annotated[
        int,
        option(LAYER, help="H_in: features of each input step.", show_default=False),
    ],
    hidden_size: Annotated[
        int, option(LAYER, help="H: features of the hidden state.", show_default=False)
    ],
    mode: Annotated[
        Mode,
        option(
            LAYER,
            help="rnn (nn.RNN), lstm (nn.LSTM) or gru (nn.GRU).",
            case_sensitive=False,
        ),
    ] = Mode.rnn,
    cell: Annotated[
        bool,
        option(
            LAYER,
            "--cell/--no-cell",
            help="One step of nn.RNNCell, nn.LSTMCell or nn.GRUCell instead.",
        ),
    ] = False,
    num_layers: Annotated[int, option(LAYER, help="Stacked recurrent layers.")] = 1,
    nonlinearity: Annotated[
        Nonlinearity,
        option(LAYER, help="Activation of nn.RNN / nn.RNNCell.", case_sensitive=False),
    ] = Nonlinearity.tanh,
    bias: Annotated[
        bool, option(LAYER, "--bias/--no-bias", help="Learn bias_ih and bias_hh.")
    ] = True,
    batch_first: Annotated[
        bool,
        option(
            LAYER,
            "--batch-first/--no-batch-first",
            help="Input and output are (N, L, H); never applies to h_0/c_0.",
        ),
    ] = False,
    dropout: Annotated[
        float, option(LAYER, help="Dropout between stacked layers, in [0, 1].")
    ] = 0.0,
    bidirectional: Annotated[
        bool,
        option(
            LAYER,
            "--bidirectional/--no-bidirectional",
            help="Run both directions: D = 2.",
        ),
    ] = False,
    proj_size: Annotated[
        int,
        option(
            LAYER,
            help="LSTM only: project h to this size (0 = off); c keeps hidden_size.",
        ),
    ] = 0,
    input_shape: Annotated[
        str | None,
        option(
            INPUT,
            show_default=False,
            metavar="SHAPE",
            help="The input tensor, e.g. 12,64,10 or 12x64x10, read as torch reads it "
            "(batch_first and unbatched inputs included).",
        ),
    ] = None,
    seq_len: Annotated[
        int | None,
        option(
            INPUT,
            min=0,
            show_default=False,
            help="L, instead of --input-shape (not for --cell).",
        ),
    ] = None,
    batch: Annotated[
        int | None,
        option(
            INPUT,
            min=0,
            show_default=False,
            help="N, with --seq-len (or alone for --cell); omit for an unbatched "
            "input.",
        ),
    ] = None,
    hx_shape: Annotated[
        str | None,
        option(
            INPUT,
            show_default=False,
            metavar="SHAPE",
            help="The h_0 (cells: hx) you intend to pass; a wrong one is rejected with "
            "the shape torch expects.",
        ),
    ] = None,
    cx_shape: Annotated[
        str | None,
        option(
            INPUT,
            show_default=False,
            metavar="SHAPE",
            help="The c_0 (cells: cx) you intend to pass; LSTM only.",
        ),
    ] = None,
    fmt: FormatOpt = None,
    expect: ExpectOpt = None,
    verify: VerifyOpt = False,
    device: DeviceOpt = DEVICE,
    max_memory: MaxMemoryOpt = MAX_MEMORY,
    explain: ExplainOpt = False,
    dtype: DtypeOpt = Dtype.float32,
) -> None:
    """Shapes of nn.RNN, nn.LSTM, nn.GRU and their cells.

    Input, h_0, c_0, output, h_n and c_n with the formula of each, and the
    parameters per layer and direction."""

    def compute() -> LayerResult:
        x = _rnn_input(cell, input_size, batch_first, input_shape, seq_len, batch)
        hx = parse_shape(hx_shape, "hx_shape") if hx_shape else None
        cx = parse_shape(cx_shape, "cx_shape") if cx_shape else None
        layer = RNN_NAMES[mode] + ("Cell" if cell else "")
        _reject_foreign(ctx, layer, rnn_args(mode, cell), RNN_ARGS)
        if cell:
            return rnn_cell(
                x, input_size, hidden_size, mode, nonlinearity, bias, hx, cx
            )
        return rnn(
            x,
            input_size,
            hidden_size,
            mode,
            num_layers,
            nonlinearity,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
            hx,
            cx,
        )

    _run(compute, Options(fmt, expect, verify, device, max_memory, explain, dtype))


@app.command("conv", epilog=" ".join(EXIT_CODES.split()))
def conv_command(
    ctx: typer.Context,
    in_channels: Annotated[
        int, option(LAYER, help="C_in: channels of the input.", show_default=False)
    ],
    out_channels: Annotated[
        int, option(LAYER, help="C_out: channels of the output.", show_default=False)
    ],
    kernel_size: Annotated[
        str,
        option(
            LAYER,
            help="An int for every dim, or one per dim (3,5).",
            show_default=False,
            metavar="INT|TUPLE",
        ),
    ],
    input_shape: Annotated[
        str,
        option(
            INPUT,
            show_default=False,
            metavar="SHAPE",
            help="(N, C_in, *spatial) or unbatched (C_in, *spatial), e.g. 8,3,224,224.",
        ),
    ],
    dims: Annotated[
        int | None,
        option(
            LAYER,
            show_default=False,
            min=1,
            max=3,
            help="Spatial dims: 1, 2 or 3 (Conv1d/2d/3d). Default: inferred from "
            "tuple-valued options or the input shape.",
        ),
    ] = None,
    transposed: Annotated[
        bool,
        option(
            LAYER,
            "--transposed/--no-transposed",
            help="nn.ConvTranspose1d/2d/3d instead of nn.Conv1d/2d/3d.",
        ),
    ] = False,
    stride: Annotated[
        str, option(LAYER, help="An int or one per dim.", metavar="INT|TUPLE")
    ] = "1",
    padding: Annotated[
        str,
        option(
            LAYER,
            help="An int, one per dim, 'same' or 'valid'.",
            metavar="INT|TUPLE|same|valid",
        ),
    ] = "0",
    dilation: Annotated[
        str,
        option(
            LAYER,
            help="Spacing between kernel taps: an int or one per dim.",
            metavar="INT|TUPLE",
        ),
    ] = "1",
    groups: Annotated[
        int,
        option(
            LAYER, help="Blocked connections; divides in_channels and out_channels."
        ),
    ] = 1,
    bias: Annotated[
        bool, option(LAYER, "--bias/--no-bias", help="Learn a bias of C_out.")
    ] = True,
    padding_mode: Annotated[
        PaddingMode,
        option(
            LAYER,
            help="How padding is filled (transposed convs take zeros only).",
            case_sensitive=False,
        ),
    ] = PaddingMode.zeros,
    output_padding: Annotated[
        str,
        option(
            LAYER,
            help="Transposed only: extra size on one side of the output.",
            metavar="INT|TUPLE",
        ),
    ] = "0",
    output_size: Annotated[
        str | None,
        option(
            INPUT,
            show_default=False,
            metavar="SHAPE",
            help="Transposed only: the output_size argument of forward (spatial sizes, "
            "or with N and C).",
        ),
    ] = None,
    fmt: FormatOpt = None,
    expect: ExpectOpt = None,
    verify: VerifyOpt = False,
    device: DeviceOpt = DEVICE,
    max_memory: MaxMemoryOpt = MAX_MEMORY,
    explain: ExplainOpt = False,
    dtype: DtypeOpt = Dtype.float32,
) -> None:
    """Shapes of nn.Conv1d/2d/3d and nn.ConvTranspose1d/2d/3d.

    Input, weight, bias and output, with the formula of each output dim."""

    def compute() -> LayerResult:
        if not transposed:
            _reject_foreign(
                ctx,
                "Conv (only with --transposed)",
                (),
                ("output_padding", "output_size"),
            )
        pad = (
            padding
            if padding in ("same", "valid")
            else parse_int_or_tuple(padding, "padding")
        )
        return conv(
            parse_shape(input_shape, "input_shape"),
            in_channels,
            out_channels,
            parse_int_or_tuple(kernel_size, "kernel_size"),
            parse_int_or_tuple(stride, "stride"),
            pad,
            parse_int_or_tuple(dilation, "dilation"),
            groups,
            bias,
            padding_mode,
            transposed,
            parse_int_or_tuple(output_padding, "output_padding"),
            parse_shape(output_size, "output_size") if output_size else None,
            dims,
        )

    _run(compute, Options(fmt, expect, verify, device, max_memory, explain, dtype))


@app.command("pool", epilog=" ".join(EXIT_CODES.split()))
def pool_command(
    ctx: typer.Context,
    input_shape: Annotated[
        str,
        option(
            INPUT,
            show_default=False,
            metavar="SHAPE",
            help="(N, C, *spatial) or unbatched (C, *spatial), e.g. 8,64,112,112.",
        ),
    ],
    kind: Annotated[
        PoolKind,
        option(
            LAYER,
            help="max (nn.MaxPool), avg (nn.AvgPool), lp (nn.LPPool), adaptive-max "
            "or adaptive-avg (nn.AdaptiveMaxPool / nn.AdaptiveAvgPool).",
            case_sensitive=False,
        ),
    ] = PoolKind.max,
    dims: Annotated[
        int | None,
        option(
            LAYER,
            show_default=False,
            min=1,
            max=3,
            help="Spatial dims: 1, 2 or 3. Default: inferred from tuple-valued "
            "options or the input rank when that is unambiguous.",
        ),
    ] = None,
    kernel_size: Annotated[
        str | None,
        option(
            LAYER,
            help="Window size: an int or one per dim (not for adaptive kinds).",
            show_default=False,
            metavar="INT|TUPLE",
        ),
    ] = None,
    stride: Annotated[
        str | None,
        option(
            LAYER,
            help="An int or one per dim. Default: kernel_size.",
            show_default=False,
            metavar="INT|TUPLE",
        ),
    ] = None,
    padding: Annotated[
        str,
        option(
            LAYER,
            help="Implicit padding on both sides, at most half the kernel (max, avg).",
            metavar="INT|TUPLE",
        ),
    ] = "0",
    dilation: Annotated[
        str,
        option(
            LAYER, help="Spacing between window taps (max only).", metavar="INT|TUPLE"
        ),
    ] = "1",
    ceil_mode: Annotated[
        bool,
        option(
            LAYER,
            "--ceil-mode/--no-ceil-mode",
            help="Round output sizes up; a last window must still start inside the "
            "input or left padding.",
        ),
    ] = False,
    count_include_pad: Annotated[
        bool,
        option(
            LAYER,
            "--count-include-pad/--no-count-include-pad",
            help="avg: count padding zeros in the average.",
        ),
    ] = True,
    divisor_override: Annotated[
        int | None,
        option(
            LAYER,
            help="avg (2d/3d): divide by this instead of the window size.",
            show_default=False,
        ),
    ] = None,
    norm_type: Annotated[
        float | None,
        option(
            LAYER,
            help="lp: the power p of the p-norm (required for lp).",
            show_default=False,
        ),
    ] = None,
    output_size: Annotated[
        str | None,
        option(
            LAYER,
            help="adaptive: the output size, an int or one per dim; none keeps that "
            "dim (e.g. 7,none).",
            show_default=False,
            metavar="INT|TUPLE",
        ),
    ] = None,
    return_indices: Annotated[
        bool,
        option(
            LAYER,
            "--return-indices/--no-return-indices",
            help="max kinds: also return the indices tensor.",
        ),
    ] = False,
    fmt: FormatOpt = None,
    expect: ExpectOpt = None,
    verify: VerifyOpt = False,
    device: DeviceOpt = DEVICE,
    max_memory: MaxMemoryOpt = MAX_MEMORY,
    explain: ExplainOpt = False,
    dtype: DtypeOpt = Dtype.float32,
) -> None:
    """Shapes of max, average, power-average and adaptive pooling in 1-3 dims.

    nn.MaxPool, nn.AvgPool, nn.LPPool, nn.AdaptiveMaxPool and nn.AdaptiveAvgPool:
    input, output (and indices), with the formula of each output dim."""

    def compute() -> LayerResult:
        _reject_foreign(ctx, POOL_CLASSES[kind], pool_args(kind, 2), POOL_ARGS)

        def ints(value, name):
            return parse_int_or_tuple(value, name) if value is not None else None

        return pool(
            parse_shape(input_shape, "input_shape"),
            kind,
            ints(kernel_size, "kernel_size"),
            ints(stride, "stride"),
            parse_int_or_tuple(padding, "padding"),
            parse_int_or_tuple(dilation, "dilation"),
            ceil_mode,
            count_include_pad,
            divisor_override,
            norm_type,
            _output_size(output_size),
            return_indices,
            dims,
        )

    _run(compute, Options(fmt, expect, verify, device, max_memory, explain, dtype))


def _output_size(text: str | None):
    """``7``, ``7,7`` or ``7,none`` (None keeps that input dim)."""
    if text is None:
        return None
    tokens = split_tokens(text, "output_size")
    if len(tokens) == 1 and "," not in text:
        return parse_int_or_tuple(text, "output_size")
    sizes = []
    for token in tokens:
        if token.lower() == "none":
            sizes.append(None)
        elif re.fullmatch(r"[0-9]+", token, flags=re.ASCII):
            sizes.append(parse_ints(token, "output_size")[0])
        else:
            raise ShapeError(
                "output_size",
                "output_size must be sizes or none separated by ',', got "
                + quoted(text),
            )
    return tuple(sizes)


def _rnn_input(cell, input_size, batch_first, input_shape, seq_len, batch):
    """The input shape, given whole or as --seq-len and --batch."""
    seq_len = as_int("seq_len", seq_len, none=True)
    batch = as_int("batch", batch, none=True)
    if input_shape is not None:
        if seq_len is not None or batch is not None:
            raise ShapeError(
                "input_shape", "give --input-shape or --seq-len/--batch, not both"
            )
        return parse_shape(input_shape, "input_shape")
    if cell:
        if seq_len is not None:
            raise ShapeError(
                "seq_len",
                "a cell takes one step: use --batch (or "
                "nothing, for an unbatched input), not --seq-len",
            )
        return ((batch,) if batch is not None else ()) + (input_size,)
    if seq_len is None:
        raise ShapeError(
            "input_shape",
            "give --input-shape, or --seq-len (and --batch for a batched input)",
        )
    if batch is None:
        return (seq_len, input_size)
    return (batch, seq_len, input_size) if batch_first else (seq_len, batch, input_size)


RNN_ARGS = rnn_args(Mode.rnn) + ("proj_size",)
POOL_ARGS = tuple(dict.fromkeys(a for k in PoolKind for a in pool_args(k, 2)))


def _reject_foreign(ctx: typer.Context, layer: str, takes, options) -> None:
    """Options the torch class has no argument for, when given on the command
    line (even at their default: torch would raise a TypeError)."""
    for name in options:
        source = ctx.get_parameter_source(name)
        if name not in takes and source is not None and source.name == "COMMANDLINE":
            flag = "--" + name.replace("_", "-")
            raise ShapeError(name, f"{flag} does not apply to nn.{layer}")


def _run(compute, options: Options) -> None:
    """Compute, check, render, and exit with the documented code."""
    from . import render

    fmt = options.fmt or render.default_format()
    try:
        _check_unused(options.verify, options.device, options.max_memory)
        result = compute()
        failures = check_expect(_parse_expect(options.expect or []), result)
        verified = None
        if options.verify:
            verified = _verify(result, options.device, options.max_memory)
    except ShapeError as exc:
        render.error(exc, fmt, options.explain)
        raise typer.Exit(2) from None
    except _unavailable() as exc:
        render.error(exc, fmt)
        raise typer.Exit(3) from None
    for message in result.warnings:
        render.warn(message)
    render.show(
        result,
        fmt,
        verified,
        options.explain,
        options.dtype,
        failures if options.expect else None,
    )
    for line in failures:
        print(f"shapecalc: expectation failed: {line}", file=sys.stderr)
    if verified is not None and not verified.ok:
        print(
            "shapecalc: verification failed: "
            + (verified.error or "torch returned other shapes"),
            file=sys.stderr,
        )
    elif verified is not None and fmt in (Format.plain, Format.shape):
        # these formats hold data only: say on stderr that the check ran
        for line in render.verdict(verified).splitlines():
            print(f"shapecalc: {line}", file=sys.stderr)
    if failures or (verified is not None and not verified.ok):
        raise typer.Exit(1)


def _check_unused(verify: bool, device: str, max_memory: str) -> None:
    """--device and --max-memory set without --verify: still checked, so that a
    typo shows now, and a warning that they change nothing."""
    if not verify and (device, max_memory) != (DEVICE, MAX_MEMORY):
        from . import render
        from .verify import check_device_name, parse_size

        check_device_name(device)
        parse_size(max_memory)
        render.warn("--device and --max-memory have no effect without --verify")


def _unavailable():
    from .verify import VerifyUnavailable

    return VerifyUnavailable


def _verify(result, device, max_memory):
    from .verify import parse_size, verify

    return verify(result, device, parse_size(max_memory))


def _parse_expect(items: list[str]) -> list[tuple[str, Pattern]]:
    expectations = []
    for item in items:
        name, sep, shape = item.partition("=")
        if not sep:
            raise ShapeError("expect", f"expect must be NAME=SHAPE, got {item!r}")
        expectations.append((name.strip(), parse_ints(shape, "expect", wildcard=True)))
    return expectations


def run() -> None:
    """Console entry point: usage errors become one line on stderr, exit 2;
    output that cannot be written ends the run quietly (a closed pipe, 141) or
    with one line (exit 2); anything else unexpected is one line and exit 70."""
    if sys.stderr is None:  # started with stderr closed: say nothing, not on stdout
        sys.stderr = open(os.devnull, "w")  # kept open for the process's life
    if sys.stdout is None:
        print(
            "shapecalc: error: cannot write the output: stdout is closed",
            file=sys.stderr,
        )
        sys.exit(2)
    if hasattr(signal, "SIGPIPE"):
        # a closed pipe ends us as it ends cat or grep (141), never as exit 1,
        # which scripts read as "a check failed"
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        code = app(prog_name="shapecalc", standalone_mode=False)
    except typer.TyperException as exc:
        message = str(exc.format_message() if hasattr(exc, "format_message") else exc)
        if message:  # empty when the help was shown for a bare command
            _usage_error(message)
        sys.exit(getattr(exc, "exit_code", 2))
    except typer.Abort:
        sys.exit(130)
    except BrokenPipeError:
        _silence_stdout()
        sys.exit(141)  # as a process killed by SIGPIPE
    except OSError as exc:
        _silence_stdout()
        print(f"shapecalc: error: cannot write the output: {exc}", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:  # noqa: BLE001 - never a traceback, but say it is ours
        if os.environ.get("SHAPECALC_DEBUG"):
            raise
        print(
            f"shapecalc: internal error: {type(exc).__name__}: {exc} (a bug in "
            "shapecalc; SHAPECALC_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        sys.exit(70)
    _flush_or_exit()
    sys.exit(code or 0)


def _usage_error(message: str) -> None:
    """One line on stderr; a JSON object on stdout too when JSON was asked for."""
    print(f"shapecalc: error: {message}", file=sys.stderr)
    if _format_asked(sys.argv[1:]) == "json":
        print(json.dumps({"error": message, "param": None}))


def _format_asked(args: list[str]) -> str | None:
    """The last --format on a command line that did not parse, as typed."""
    fmt = None
    for arg, after in zip(args, args[1:] + [""]):
        if arg in ("--format", "-f"):
            fmt = after
        elif arg.startswith("--format="):
            fmt = arg.partition("=")[2]
        elif arg.startswith("-f") and not arg.startswith("--"):
            fmt = arg[2:]  # -fjson, as click reads it
    return fmt.lower() if fmt else None


def _flush_or_exit() -> None:
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        sys.exit(141)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's own final flush stays quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)


CheckFormatOpt = format_option(
    "table for people; json (one report object); plain (a line per entry: "
    "file:line, entry, layer, status, detail, tab-separated); shape (file:line, "
    "entry, output shape; empty when invalid)."
)


@app.command("check", epilog=" ".join(EXIT_CODES.split()))
def check_command(
    files: Annotated[
        list[str],
        typer.Argument(
            metavar="FILE...",
            show_default=False,
            help="Spec files, TOML or JSON; - reads one from stdin.",
        ),
    ],
    fmt: CheckFormatOpt = None,
    verify: VerifyOpt = False,
    device: DeviceOpt = DEVICE,
    max_memory: MaxMemoryOpt = MAX_MEMORY,
    junit_xml: Annotated[
        str | None,
        option(
            OUTPUT,
            "--junit-xml",
            metavar="PATH",
            show_default=False,
            help="Also write a JUnit XML report there, for CI systems.",
        ),
    ] = None,
    quiet: Annotated[
        bool,
        option(
            OUTPUT,
            "--quiet/--no-quiet",
            "-q",
            help="List only the entries that did not pass (table and plain).",
        ),
    ] = False,
) -> None:
    """Check every layer listed in spec files (TOML or JSON).

    Exit 0 when all pass, 1 when an expectation or verification fails, 2 when a
    file or entry is invalid (the others still run and are reported), 3 when
    verification cannot run."""
    from . import render

    fmt = fmt or render.default_format()
    # a big check keeps every result until the report: the cycle collector
    # would traverse them again and again (a quarter of the run) for nothing,
    # but torch's modules may hold cycles, so it runs as usual under --verify
    with nullcontext() if verify else _gc_paused():
        counts = _check_and_report(
            files, fmt, verify, device, max_memory, junit_xml, quiet
        )
    if counts["invalid"] or counts["failed"]:
        raise typer.Exit(2 if counts["invalid"] else 1)


def _check_and_report(files, fmt, verify, device, max_memory, junit_xml, quiet):
    """Run every entry, print the report, return the totals; the outcomes are
    gone when it returns."""
    from . import render, specs

    try:
        _check_unused(verify, device, max_memory)
        if junit_xml is not None:
            _writable(junit_xml)
        checker = _entry_verifier(device, max_memory) if verify else None
        show_bar = verify and sys.stderr.isatty() and fmt is Format.table
        outcomes = specs.run_files(
            files, checker, render.progress_bar if show_bar else None
        )
    except ShapeError as exc:
        render.error(exc, fmt)
        raise typer.Exit(2) from None
    except _unavailable() as exc:
        render.error(exc, fmt)
        raise typer.Exit(3) from None
    counts = specs.totals(outcomes)
    if verify and device == "meta":
        from .verify import META_NOTE

        print(f"shapecalc: note: {META_NOTE}", file=sys.stderr)
    render.show_report(outcomes, counts, fmt, quiet)
    if junit_xml is not None:
        try:
            render.write_junit(outcomes, junit_xml)
        except OSError as exc:
            print(
                f"shapecalc: error: cannot write --junit-xml {junit_xml}: "
                f"{exc.strerror or exc}",
                file=sys.stderr,
            )
            raise typer.Exit(2) from None
    return counts


@contextmanager
def _gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _writable(path: str) -> None:
    """Fail before the run, not after it, when the report cannot be written."""
    try:
        with open(path, "a"):
            pass
    except OSError as exc:
        raise ShapeError(
            "junit_xml",
            f"junit_xml must be a writable file, got {path!r} ({exc.strerror or exc})",
        ) from None


def _entry_verifier(device: str, max_memory: str):
    """Checks the options once, before any entry runs, then verifies each."""
    from .verify import check_device_name, parse_size, verify

    limit = parse_size(max_memory)
    check_device_name(device)
    return lambda result: verify(result, device, limit)

"""Check a computed result against the real torch layer.

The only module that imports torch, and only inside the functions that need
it, so that importing this module costs nothing.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from fractions import Fraction

from .layers.common import LayerResult, ShapeError, human_bytes, quoted

BYTES_PER_ELEMENT = 4  # torch's default dtype, float32
DEFAULT_MAX_MEMORY = 2 * 1024**3
META_NOTE = (
    "the meta device checks shapes, not every rule: torch skips some "
    "checks there (negative padding, output_padding >= stride)"
)
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "k": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tib": 1024**4,
}


class VerifyUnavailable(RuntimeError):
    """Verification cannot run here: torch is missing or the device is absent."""


@dataclass(frozen=True)
class Verification:
    """What torch returned for each row of a result."""

    device: str
    ok: bool
    shapes: dict[str, tuple[int, ...] | None]
    parameters: int | None
    error: str | None = None
    note: str | None = None


def parse_size(text: str) -> int:
    """Bytes from ``2GiB``, ``512MiB``, ``100MB`` or a plain number.

    >>> parse_size("512MiB")
    536870912
    """
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match and match.group(2).lower()
    if not match or unit not in _UNITS:
        raise ShapeError(
            "max_memory",
            "max_memory must be a size such as 2GiB, 512MiB or 1000000, got "
            + quoted(text),
        )
    whole, _, fraction = match.group(1).partition(".")
    # Python's int() refuses more than 4300 digits: 40 are more bytes than any
    # machine holds, and 20 decimals finer than one byte
    whole = whole.lstrip("0") or "0"
    number = "1" + "0" * 40 if len(whole) > 40 else f"{whole}.{fraction[:20] or 0}"
    # exact arithmetic: a float would overflow on a few hundred digits
    return int(Fraction(number) * _UNITS[unit])


def estimate_bytes(result: LayerResult) -> int:
    """float32 bytes of every tensor verification creates: rows and weights."""
    rows = sum(t.numel for t in result.tensors if t.role != "param")
    return (rows + result.parameters) * BYTES_PER_ELEMENT


def verify(
    result: LayerResult, device: str = "cpu", max_memory: int = DEFAULT_MAX_MEMORY
) -> Verification:
    """Build the torch module, run one forward pass, compare every shape."""
    needed = estimate_bytes(result)
    if device != "meta" and needed > max_memory:
        raise ShapeError(
            "max_memory",
            (
                f"max_memory must cover the {human_bytes(needed)} that verification "
                f"on {device} allocates, got {human_bytes(max_memory)}; use --device "
                "meta to verify any size without allocating"
            ),
        )
    torch = _import_torch()
    _check_device(torch, device)
    note = META_NOTE if device == "meta" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            module = _build(torch, result, device)
            with torch.no_grad():
                shapes = _run(torch, module, result, device)
        except Exception as exc:  # noqa: BLE001 - torch raises many types
            message = (
                str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            )
            return Verification(
                device,
                False,
                {},
                None,
                error=f"torch raised {type(exc).__name__}: {message}",
                note=note,
            )
    shapes |= {name: tuple(getattr(module, name).shape) for name, _ in result.weights}
    parameters = sum(p.numel() for p in module.parameters())
    ok = parameters == result.parameters and all(
        shapes.get(name, want) == want for name, want in _expected(result).items()
    )
    return Verification(device, ok, shapes, parameters, note=note)


def _expected(result: LayerResult) -> dict[str, tuple[int, ...]]:
    return result.shapes | dict(result.weights)


def _import_torch():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torch
    except ImportError:
        raise VerifyUnavailable(
            "torch is not installed; --verify needs it: pip install torch (from a "
            "shapecalc checkout: pip install -c constraints.txt -e '.[torch]')"
        ) from None
    except Exception as exc:  # noqa: BLE001 - a broken install raises anything
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise VerifyUnavailable(
            f"torch could not be imported: {type(exc).__name__}: {reason}"
        ) from None
    return torch


def check_device_name(device: str) -> None:
    """cpu, cuda, cuda:N or meta: what --device takes, checked without torch."""
    if not re.fullmatch(r"cpu|meta|cuda(:[0-9]+)?", device):
        raise ShapeError(
            "device", f"device must be cpu, cuda, cuda:N or meta, got {quoted(device)}"
        )


def _check_device(torch, device: str) -> None:
    check_device_name(device)
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise VerifyUnavailable(
                f"device {device} is unavailable: torch sees no CUDA GPU here"
            )
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise VerifyUnavailable(
                f"device {device} is unavailable: torch sees "
                f"{torch.cuda.device_count()} CUDA GPU(s)"
            )


def _build(torch, result: LayerResult, device: str):
    cls = getattr(torch.nn, result.layer)
    # pooling layers hold no tensors and take no device argument
    return (
        cls(**result.params, device=device) if result.weights else cls(**result.params)
    )


def _run(torch, module, result: LayerResult, device: str) -> dict:
    def zeros(name):
        return torch.zeros(result.shapes[name], device=device)

    x = zeros("input")
    kwargs = dict(result.forward)
    kwargs.pop("states", None)
    names = [t.name for t in result.tensors if t.role == "state"]
    if names:
        states = [zeros(n) for n in names]
        outputs = module(x, tuple(states) if len(states) == 2 else states[0])
    else:
        outputs = module(x, **kwargs)
    flat = _flatten(outputs)
    out_names = [t.name for t in result.tensors if t.role == "output"]
    shapes = {n: tuple(t.shape) for n, t in zip(out_names, flat)}
    return shapes | {n: tuple(zeros(n).shape) for n in names + ["input"]}


def _flatten(outputs) -> list:
    if isinstance(outputs, (tuple, list)):
        return [t for item in outputs for t in _flatten(item)]
    return [outputs]

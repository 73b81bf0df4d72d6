"""Shared fixtures: torch as the oracle, and hypothesis profiles for CI."""

import os
import warnings

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    max_examples=5000,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def _import_torch():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torch
    except ImportError:
        if os.environ.get("SHAPECALC_REQUIRE_TORCH"):
            raise
        return None
    return torch


TORCH = _import_torch()
needs_torch = pytest.mark.skipif(TORCH is None, reason="torch is not installed")
needs_cuda = pytest.mark.skipif(
    TORCH is None or not TORCH.cuda.is_available(), reason="no CUDA GPU here"
)


def torch_outcome(build, inputs):
    """Run torch: ("ok", [shapes of every output]) or ("error", message)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            module = build()
            with TORCH.no_grad():
                out = inputs(module)
        except Exception as exc:  # noqa: BLE001 - torch raises many types
            return "error", f"{type(exc).__name__}: {exc}", None
    return "ok", [tuple(t.shape) for t in flatten(out)], module


def flatten(outputs):
    if isinstance(outputs, (tuple, list)):
        return [t for item in outputs for t in flatten(item)]
    return [outputs]

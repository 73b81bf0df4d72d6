"""--verify: the real torch module agrees with every computed shape."""

import pytest

from shapecalc import ShapeError, conv, rnn, rnn_cell
from shapecalc.layers.pool import pool
from shapecalc.verify import estimate_bytes, parse_size, verify
from tests.conftest import needs_cuda, needs_torch

LAYERS = {
    "lstm": lambda: rnn(
        (7, 3, 10),
        10,
        20,
        mode="lstm",
        proj_size=5,
        num_layers=2,
        bidirectional=True,
        hx_shape=(4, 3, 5),
        cx_shape=(4, 3, 20),
    ),
    "gru-unbatched": lambda: rnn((7, 10), 10, 20, mode="gru", batch_first=True),
    "lstm-cell": lambda: rnn_cell((3, 10), 10, 20, mode="lstm"),
    "conv3d": lambda: conv(
        (2, 4, 5, 6, 7), 4, 6, (3, 1, 2), stride=2, padding=1, groups=2
    ),
    "conv-same-reflect": lambda: conv(
        (2, 9, 11), 2, 3, 4, padding="same", padding_mode="reflect"
    ),
    "transposed": lambda: conv(
        (1, 4, 5, 5), 4, 2, 3, stride=2, transposed=True, output_size=(12, 12)
    ),
    "maxpool-indices": lambda: pool(
        (2, 3, 9, 9),
        "max",
        kernel_size=3,
        stride=2,
        padding=1,
        ceil_mode=True,
        return_indices=True,
        dims=2,
    ),
    "lppool": lambda: pool((2, 3, 9), "lp", kernel_size=3, norm_type=2, dims=1),
    "adaptive": lambda: pool(
        (2, 3, 9, 7), "adaptive-max", output_size=(4, None), return_indices=True
    ),
}


@needs_torch
@pytest.mark.parametrize("device", ["cpu", "meta"])
@pytest.mark.parametrize("name", LAYERS)
def test_every_family_verifies(name, device):
    result = LAYERS[name]()
    verified = verify(result, device)
    assert (verified.ok, verified.error) == (True, None)
    assert verified.parameters == result.parameters
    for row in result.shapes:
        assert verified.shapes[row] == result.shapes[row]


@needs_cuda
@pytest.mark.parametrize("name", LAYERS)
def test_every_family_verifies_on_cuda(name):
    assert verify(LAYERS[name](), "cuda").ok


def test_memory_limit_is_checked_before_torch_is_imported():
    result = conv((64, 3, 512, 512), 3, 64, 3)
    assert estimate_bytes(result) == 4 * (
        64 * 3 * 512 * 512 + 64 * 64 * 510 * 510 + 64 * 27 + 64
    )
    with pytest.raises(
        ShapeError,
        match="^max_memory must cover the 4.2 GiB that verification on cpu "
        "allocates, got 1.0 GiB; use --device meta",
    ):
        verify(result, "cpu", parse_size("1GiB"))


@pytest.mark.parametrize(
    "text, size",
    [
        ("2GiB", 2 * 1024**3),
        ("512MiB", 512 * 1024**2),
        ("1000000", 10**6),
        ("1.5 GB", 1.5e9),
        ("64k", 65536),
    ],
)
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "", "-1", "2 GiBs"])
def test_parse_size_rejects(text):
    with pytest.raises(ShapeError, match="^max_memory must be a size such as"):
        parse_size(text)

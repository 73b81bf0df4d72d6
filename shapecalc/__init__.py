"""shapecalc: tensor shapes of PyTorch layers, computed without torch.

>>> from shapecalc import rnn
>>> rnn((12, 64, 10), input_size=10, hidden_size=10).shapes["h_n"]
(1, 64, 10)
"""

from .layers.common import Dtype, LayerResult, ShapeError, Step, Tensor, memory
from .layers.conv import PaddingMode, conv
from .layers.pool import PoolKind, pool
from .layers.rnn import Mode, Nonlinearity, rnn, rnn_cell

__version__ = "0.1.0"

__all__ = [
    "Dtype",
    "LayerResult",
    "Mode",
    "Nonlinearity",
    "PaddingMode",
    "PoolKind",
    "ShapeError",
    "Step",
    "Tensor",
    "conv",
    "memory",
    "pool",
    "rnn",
    "rnn_cell",
]

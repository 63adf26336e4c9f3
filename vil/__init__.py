"""Vision-LSTM (ViL) with every block-design choice a registered, swappable part."""

from vil import mlstm
from vil.convert import (
    REFERENCE_SOURCES,
    ConversionError,
    convert_reference_state_dict,
    load_reference_state_dict,
)
from vil.flops import count_flops, count_params
from vil.model import ViLConfig, VisionLSTM, create_model
from vil.poolings import PAPER_POOLINGS, POOLINGS, Pooling, register_pooling
from vil.pretrained import PRETRAINED
from vil.registry import Registry, UnknownNameError
from vil.releases import INITS, RELEASES, Release
from vil.resample import resample_pos_embed
from vil.sizes import SIZES, register_size
from vil.traversals import (
    ORDERS,
    PAPER_TRAVERSALS,
    TRAVERSALS,
    Direction,
    Traversal,
    register_traversal,
)

__all__ = [
    "RELEASES",
    "INITS",
    "ORDERS",
    "PRETRAINED",
    "REFERENCE_SOURCES",
    "PAPER_POOLINGS",
    "PAPER_TRAVERSALS",
    "POOLINGS",
    "SIZES",
    "TRAVERSALS",
    "ConversionError",
    "Release",
    "Direction",
    "Pooling",
    "Registry",
    "Traversal",
    "UnknownNameError",
    "ViLConfig",
    "VisionLSTM",
    "convert_reference_state_dict",
    "count_flops",
    "count_params",
    "create_model",
    "load_reference_state_dict",
    "mlstm",
    "register_pooling",
    "register_size",
    "register_traversal",
    "resample_pos_embed",
]

"""Features: metadata and text → matrices, and the numeric problem engines see."""

from .builder import FeatureBuilder, SideSpec, parse_metadata
from .data import Cells, DatasetBlock, TrainData
from .text import HashingEncoder, TextEncoder, TransformerEncoder, embed, get_encoder

__all__ = ["FeatureBuilder", "SideSpec", "parse_metadata", "DatasetBlock", "TrainData", "HashingEncoder",
           "TextEncoder", "TransformerEncoder", "embed", "get_encoder"]

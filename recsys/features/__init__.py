"""Features: metadata and text → matrices, and the numeric problem engines see.

The feature builder (pandas) and the text encoders are imported on first use, so that engines and
the numeric layer (:mod:`recsys.features.data`) load without them.
"""

from __future__ import annotations

import importlib

from .data import Cells, DatasetBlock, Ids, SideFeatures, ZooData

__all__ = ["FeatureBuilder", "SideSpec", "parse_metadata", "new_dataset_frame", "Cells", "DatasetBlock", "Ids",
           "SideFeatures", "ZooData", "HashingEncoder",
           "TextEncoder", "TransformerEncoder", "embed", "get_encoder"]

_LAZY = {"FeatureBuilder": ".builder", "SideSpec": ".builder", "parse_metadata": ".builder", "new_dataset_frame": ".builder",
         "HashingEncoder": ".text", "TextEncoder": ".text", "TransformerEncoder": ".text", "embed": ".text",
         "get_encoder": ".text"}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'recsys.features' has no attribute {name!r}")

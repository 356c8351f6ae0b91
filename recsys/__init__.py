"""recsys: which pretrained models to fine-tune on your dataset.

Learns from a history of fine-tuning results (a model x dataset accuracy
matrix, mostly unknown) and completes it with a LightFM hybrid factorization
whose side features are model and dataset metadata plus text embeddings.
"""

from ._version import __version__
from .errors import ArtifactError, RecsysError, UnknownNameError, ZooError
from .zoo import Zoo, load_zoo

__all__ = ["__version__", "Zoo", "load_zoo", "RecsysError", "ZooError", "UnknownNameError", "ArtifactError"]

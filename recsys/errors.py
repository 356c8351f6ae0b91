"""Exceptions raised by recsys.

Every error meant for a user derives from :class:`RecsysError`; its message is a
single line that says what is wrong, what is accepted and how to fix it. The CLI
prints that line and exits with the error's ``exit_code``.
"""

from __future__ import annotations

import difflib
from typing import Iterable

__all__ = [
    "RecsysError",
    "UsageError",
    "ZooError",
    "UnknownNameError",
    "ArtifactError",
    "NotFittedError",
    "ModelFitError",
    "closest",
]


class RecsysError(Exception):
    """Base class of every error recsys reports to a user."""

    exit_code = 1


class UsageError(RecsysError, ValueError):
    """A request that names something that does not exist or combines options wrongly (exit status 2)."""

    exit_code = 2


class ZooError(RecsysError, ValueError):
    """A zoo directory (models, datasets, records, scores) is missing or invalid."""


class UnknownNameError(RecsysError, KeyError):
    """A model or dataset name that the zoo or the fitted model does not know."""

    exit_code = 2

    def __init__(self, kind: str, name: str, valid: Iterable[str]):
        self.kind, self.name = kind, name
        self.suggestions = closest(name, valid)
        hint = f"; did you mean {', '.join(repr(s) for s in self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"unknown {kind} {name!r}{hint}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class ArtifactError(RecsysError):
    """A model file that is not a readable recsys artifact."""


class NotFittedError(RecsysError, AttributeError):
    """An engine used before ``fit``."""


class ModelFitError(RecsysError, ArithmeticError):
    """Fitting produced non-finite parameters or predictions."""


def closest(name: str, valid: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` names of ``valid`` that look like ``name`` (for 'did you mean')."""
    valid = [str(v) for v in valid]
    found = difflib.get_close_matches(str(name), valid, n=n, cutoff=0.6)
    if not found:
        low = str(name).lower()
        found = [v for v in valid if low and (low in v.lower() or v.lower() in low)][:n]
    return found

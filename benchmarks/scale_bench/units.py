"""How the scale benchmark writes values, times and sizes ("—" when there is none)."""

from __future__ import annotations

import math


def fmt(v, spec: str, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:{spec}}{unit}"


def secs(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "—"
    return f"{v:.2f} s" if v < 10 else f"{v:.1f} s" if v < 1000 else f"{v:,.0f} s"


def size_text(v: float | None) -> str:
    """A size in MiB as text (GiB from 1,024 MiB)."""
    if v is None:
        return "—"
    return f"{v / 1024:.2f} GiB" if v >= 1024 else f"{v:.0f} MiB" if v >= 10 else f"{v:.2f} MiB"

"""Zoo sizes: the growth ladder of issue 12 and ``MxD@DENSITY`` specs; 10% of every zoo's records are hidden."""

from __future__ import annotations

import dataclasses
import re

#: share of each zoo's records hidden before fitting (the hold-out)
HOLDOUT = 0.1


@dataclasses.dataclass(frozen=True)
class Size:
    """A zoo size: ``models`` x ``datasets`` with ``records`` observed cells (hold-out included)."""

    name: str
    models: int
    datasets: int
    records: int
    ladder: bool = True  # on the growth ladder (False: another shape, left out of the growth exponents)

    @property
    def density(self) -> float:
        return self.records / (self.models * self.datasets)

    @property
    def fitted(self) -> int:
        """Records left for fitting once the hold-out is hidden."""
        return self.records - n_holdout(self.records)

    def label(self) -> str:
        return f"{self.models:,} x {self.datasets:,}"


def n_holdout(n: int) -> int:
    return int(round(HOLDOUT * n))


#: the sizes of issue 12 (records = the observed cells, 10% of which are hidden for the hold-out)
SIZES = {s.name: s for s in [
    Size("smoke", 40, 12, 384, False),    # for the tests: a few datasets with >= 3 hidden records
    Size("2.7k", 10, 270, 2_700),          # DomainNet-270's shape, every cell known
    Size("10k", 50, 1_000, 10_000),        # 20%
    Size("30k", 200, 3_000, 30_000),       # 5%
    Size("real", 1_300, 36, 46_000, False),  # the shape of a public record set of Hugging Face checkpoints
    Size("100k", 500, 10_000, 100_000),    # 2%
    Size("300k", 1_000, 30_000, 300_000),  # 1%
    Size("1m", 5_000, 100_000, 1_000_000),  # 0.2%
    Size("10m", 10_000, 100_000, 10_000_000),  # 1%
]}
DEFAULT_SIZES = ["2.7k", "10k", "30k", "real", "100k", "300k", "1m", "10m"]


def parse_size(spec: str) -> Size:
    """A size by name (``SIZES``) or as ``MxD@DENSITY``.

    ``DENSITY`` is a fraction (``0.01``), a percentage (``1%``) or a record count
    (``46000``, ``46k``, ``1m``).

    Examples
    --------
    >>> parse_size("500x10000@2%").records
    100000
    >>> parse_size("1300x36@46k").records
    46000
    """
    spec = spec.strip()
    if spec.lower() in SIZES:
        return SIZES[spec.lower()]
    m = re.fullmatch(r"(\d+)\s*[xX]\s*(\d+)\s*@\s*([0-9.eE+]+)\s*([%kKmM]?)", spec)
    if not m:
        raise ValueError(f"size {spec!r}: give a name ({', '.join(SIZES)}) or MxD@DENSITY, e.g. 500x10000@2%, "
                         f"500x10000@0.02 or 1300x36@46000")
    n_m, n_d, value, unit = int(m[1]), int(m[2]), float(m[3]), m[4].lower()
    cells = n_m * n_d
    if unit == "%":
        records = value / 100 * cells
    elif unit in ("k", "m"):
        records = value * (1e3 if unit == "k" else 1e6)
    elif value <= 1:
        records = value * cells
    else:
        records = value
    records = int(round(records))
    if not 1 <= records <= cells or n_m < 2 or n_d < 2:
        raise ValueError(f"size {spec!r}: needs at least 2 models, 2 datasets and 1 .. {cells} records")
    return Size(spec, n_m, n_d, records)


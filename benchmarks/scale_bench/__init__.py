"""The scale benchmark (``benchmarks/scale.py``), one module per concern.

- :mod:`.sizes`: the size ladder and ``MxD@DENSITY`` specs;
- :mod:`.generator`: seeded synthetic zoos in the canonical format, cached by (size, seed);
- :mod:`.watchdog`: child processes under a wall-clock timeout and a memory cap, with their own peak RSS;
- :mod:`.probe`: the in-process measurements (topk latency, hold-out Pearson) run inside a child;
- :mod:`.measure`: the benchmark itself: every step of every (size, engine), each in its own child;
- :mod:`.report` and :mod:`.plot`: ``scale.md``, ``scale.csv`` and ``scale.png``;
- :mod:`.units`: how times and sizes are written.
"""

from pathlib import Path

#: the checkout whose recsys the children import
ROOT = Path(__file__).resolve().parents[2]
#: the command-line entry (children run it with ``--probe``)
ENTRY = ROOT / "benchmarks" / "scale.py"

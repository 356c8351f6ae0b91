"""The cross-zoo suite's tables (recsys.evaluation.suite), on hand-made per-dataset rows: what is compared with
what, the tolerance of a tie, the verdicts, the sequential and P(best) tables, the bootstrap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

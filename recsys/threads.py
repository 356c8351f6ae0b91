"""One BLAS thread for small products: :func:`one_blas_thread`, shared by the engines, the answers and scores.

Measured on a 2-core machine shared with other jobs: OpenBLAS's threaded
tridiagonal reduction (memory-bound level-2 BLAS) took 14 s on a 1024 x 1024
matrix against 0.3 s on one thread; small products were 100 times slower on two
threads; ``Recommender.topk`` on a 10,000-model zoo beside two busy processes
took 193-241 ms with the default threads, 104-157 ms with its joint draws on one
thread. Large matrix products still gain from both cores. The user's own thread
settings are restored on exit.
"""

from __future__ import annotations

import contextlib
import sys

__all__ = ["one_blas_thread"]

_controller = None
_seen = -1


def _blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries, looked up again only when modules were imported since
    (scipy loads its own OpenBLAS when first imported, after numpy's; a lookup costs about 1.5 ms)."""
    global _controller, _seen
    if len(sys.modules) != _seen:
        from threadpoolctl import ThreadpoolController

        _controller, _seen = ThreadpoolController(), len(sys.modules)
    return _controller


def one_blas_thread(active: bool = True):
    """A context in which BLAS and LAPACK run on one thread (``active`` False: changes nothing)."""
    if not active:
        return contextlib.nullcontext()
    return _blas_controller().limit(limits=1, user_api="blas")

#!/usr/bin/env python
"""Scale benchmark: synthetic zoos from 10 x 270 to 10,000 x 100,000 (10 M records), every engine.

    python benchmarks/scale.py                               # every size, every engine -> benchmarks/results/
    python benchmarks/scale.py --sizes 10k,30k --engines additive,als
    python benchmarks/scale.py --sizes 2000x5000@0.5% --max-records 1e6
    python benchmarks/scale.py --smoke --out DIR             # a few seconds (the tests run it)

For each size a seeded synthetic zoo is generated once and cached by (size, seed)
(``--cache-dir``, default ``$RECSYS_SCALE_CACHE`` or ``<tmp>/recsys-scale-cache``); see
``scale_bench.generator.generate`` for its structure. 10% of its records are hidden before fitting (the
hold-out). For each engine, every measurement runs in its own child process, under a
wall-clock timeout and a memory cap, so an engine that fails is recorded ("timeout",
"out of memory", or its one-line error) and the benchmark goes on; an engine that fails
at one size is not run at the larger ones.

Measured per (size, engine):

- whole-process ``recsys fit --zoo DIR --engine E --out FILE --seed 0`` (text encoder,
  selection and calibration included): wall time, peak RSS of that child alone
  (``os.wait4``), model file size;
- in-process, after ``recsys.load_model``: median latency of ``rec.topk(dataset, k=10)``
  over known datasets and of ``rec.topk_new(metadata, k=10)`` over brand-new datasets
  drawn from the same generator; hold-out Pearson (mean over datasets with >= 3 hidden
  records of the Pearson correlation between predicted and hidden accuracies; a seeded
  sample of datasets on the large zoos) and its difference to ``additive``;
- whole-process ``recsys topk`` (median of 3) as a ratio to the interpreter floor
  ``python -c "import numpy, click, json"`` measured in the same run;
- whole-process ``recsys predict --format csv`` of the whole matrix, streamed into a pipe
  that counts its lines (so a 10^9-cell matrix needs no disk).

Writes ``scale.md`` (table, hardware line, command, fitted growth exponents), ``scale.csv``
(every figure) and ``scale.png`` (log-log fit time and peak memory against records).
Linux only (``os.wait4``, ``resource`` in the launcher, ``/proc`` for the memory watchdog).

This file is the command line; the code is the package ``benchmarks/scale_bench/``, one module per
concern (sizes, generator, watchdog, probe, measure, report, plot).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

if str(Path(__file__).resolve().parent) not in sys.path:  # loaded from elsewhere (the tests)
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale_bench import ROOT  # noqa: E402
from scale_bench.generator import cached_zoo  # noqa: E402
from scale_bench.measure import Config, default_engines, run  # noqa: E402
from scale_bench.probe import probe  # noqa: E402
from scale_bench.sizes import DEFAULT_SIZES, SIZES, parse_size  # noqa: E402

log = logging.getLogger("scale")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="sizes: " + ", ".join(f"{k} = {s.label()} with {s.records:,} records"
                                                              for k, s in SIZES.items()))
    ap.add_argument("--sizes", default=None, help="comma-separated size names or MxD@DENSITY (default: "
                                                  + ",".join(DEFAULT_SIZES) + ")")
    ap.add_argument("--engines", default=None, help="comma-separated engines (default: every engine that needs no "
                                                    "transferability scores)")
    ap.add_argument("--max-records", type=float, default=None, help="skip sizes with more records than this")
    ap.add_argument("--out", type=Path, default=None,
                    help="output directory (default benchmarks/results; with --smoke a new temporary directory)")
    ap.add_argument("--cache-dir", type=Path, default=None,
                    help="generated zoos (default $RECSYS_SCALE_CACHE, else <tmp>/recsys-scale-cache)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--text-encoder", default=None, help="passed to recsys fit (default: the shipped MiniLM)")
    ap.add_argument("--timeout", type=float, default=1200, help="seconds per child process (default 1200)")
    ap.add_argument("--mem-cap-gb", type=float, default=8, help="resident memory per child, GiB (default 8)")
    ap.add_argument("--max-predict-cells", type=float, default=float("inf"),
                    help="run predict-all only on matrices of at most this many cells (default: every size "
                         "the projection allows)")
    ap.add_argument("--no-projection", action="store_true",
                    help="run every step even when smaller sizes project it past the timeout")
    ap.add_argument("--smoke", action="store_true",
                    help="a few seconds: the smoke size, additive (or --engines), hashing text encoder, no warm-up")
    ap.add_argument("--generate-only", action="store_true", help="generate (or find) the zoos and stop")
    ap.add_argument("--probe", default=None, help=argparse.SUPPRESS)  # internal: in-process measurements
    return ap.parse_args(argv)


def config(args: argparse.Namespace, argv: list[str]) -> Config:
    engines = [e.strip() for e in args.engines.split(",") if e.strip()] if args.engines else None
    if args.smoke:  # every step once, on a tiny zoo: the tests run it
        sizes, engines = [SIZES["smoke"]], engines or ["additive"]
        encoder, repeats, cli_repeats, floor_repeats = args.text_encoder or "hashing", 3, 1, 1
    else:
        sizes = [parse_size(s) for s in (args.sizes.split(",") if args.sizes else DEFAULT_SIZES) if s.strip()]
        engines = engines or default_engines()
        encoder, repeats, cli_repeats, floor_repeats = args.text_encoder, 20, 3, 5
    if args.max_records is not None:
        sizes = [s for s in sizes if s.records <= args.max_records]
    out = args.out or (Path(tempfile.mkdtemp(prefix="recsys-scale-")) if args.smoke
                       else ROOT / "benchmarks" / "results")
    cache = args.cache_dir or Path(os.environ.get("RECSYS_SCALE_CACHE")
                                   or Path(tempfile.gettempdir()) / "recsys-scale-cache")
    command = "python benchmarks/scale.py " + " ".join(shlex.quote(a) for a in argv)
    return Config(out=out, cache_dir=cache, engines=engines, sizes=sorted(sizes, key=lambda s: s.records),
                  seed=args.seed, text_encoder=encoder, timeout=args.timeout, mem_cap_mb=args.mem_cap_gb * 1024,
                  repeats=repeats, cli_repeats=cli_repeats, floor_repeats=floor_repeats, warm=not args.smoke,
                  project=not args.no_projection, max_predict_cells=args.max_predict_cells,
                  command=command.strip())


def _terminate(signum, frame):
    raise SystemExit(128 + signum)  # so that run_child's handler kills the running child


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.probe is not None:
        print(json.dumps(probe(json.loads(args.probe))))
        return 0
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    logging.basicConfig(level=logging.INFO, format="scale: %(message)s", stream=sys.stderr)
    try:
        cfg = config(args, argv)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.generate_only:
        for size in cfg.sizes:
            path, info = cached_zoo(size, cfg.seed, cfg.cache_dir)
            print(path)
        return 0
    t0 = time.perf_counter()
    run(cfg)
    log.info("wrote %s (%.0f s)", cfg.out / "scale.md", time.perf_counter() - t0)
    print(cfg.out / "scale.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

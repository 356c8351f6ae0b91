#!/usr/bin/env python
"""What the lazy checksum verification costs `recsys topk` on a large model file (whole process).

    python benchmarks/lazy_checksum.py --model big.npz --dataset NAME            # median of 11 runs each
    python benchmarks/lazy_checksum.py --model big.npz --dataset NAME --runs 21

`recsys topk` memory-maps a model file's large arrays and, before its first answer, reads each once to check
its CRC-32 and its values (``recsys.artifact.verify_mapped``); a file that passed is remembered in the user's
cache and not read again while it is unchanged. This runs `recsys topk` in fresh processes three ways: the
first load of the file (an empty cache each run: verified), a later load (remembered), and with the
verification replaced by a no-op, in turns so that all see the same load; it prints the median wall time, CPU
time (user + system, all threads, from ``wait4``) and peak RSS (file pages read count: they are shared page
cache, not memory of the process's own).

A 10 M-record file: ``python benchmarks/scale.py --sizes 10m --generate-only`` writes the zoo, then
``recsys fit --zoo <cache>/zoo-10000x100000-.../zoo --text-encoder hashing --out big.npz`` (about 3 minutes
and 3 GiB); a dataset name is any of its ``datasets.csv``. Not a test: timings move with the machine's load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile


def run(code: str, cache: str) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MiB) of ``python -c code`` in a process of its own, ``cache`` its recsys cache."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                            env={**os.environ, "RECSYS_CACHE_DIR": cache})
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"recsys topk failed (exit {os.waitstatus_to_exitcode(status)}): run it by hand to see why")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a model file with memory-mapped arrays (256 KiB and more)")
    parser.add_argument("--dataset", required=True, help="a dataset of the model's zoo")
    parser.add_argument("--runs", type=int, default=11, help="runs of each variant (default 11)")
    args = parser.parse_args()
    with zipfile.ZipFile(args.model) as zf:
        mapped = sum(i.file_size for i in zf.infolist() if i.compress_type == zipfile.ZIP_STORED
                     and i.file_size >= 1 << 18)
    argv = ["topk", "--model", os.path.abspath(args.model), "--dataset", args.dataset, "-k", "5"]
    topk = f"from recsys.cli import main; main({argv!r})"
    code = {"first load (verified)": topk, "later loads (remembered)": topk,
            "without verification": "import recsys.recommender as r; r.verify_mapped = lambda *a, **k: None\n" + topk}
    results: dict[str, list] = {k: [] for k in code}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        kept = os.path.join(tmp, "kept")
        run(topk, kept)  # (remembers the file, unless it was written in the last 2 s)
        for i in range(args.runs):
            for j, name in enumerate(list(code)[i % 3:] + list(code)[:i % 3]):
                results[name].append(run(code[name], kept if name.startswith("later") else
                                         os.path.join(tmp, f"fresh-{i}-{j}")))
    print(f"{args.model}: {mapped / 2**20:.0f} MiB of mapped arrays; {args.runs} runs each; load average "
          f"{load:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for name, rows in results.items():
        wall, cpu, rss = (statistics.median(r[j] for r in rows) for j in range(3))
        print(f"  recsys topk {name}: wall {wall:.3f} s, CPU {cpu:.3f} s, peak RSS {rss:.0f} MiB (medians)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Run README.md's examples and write what they print, and how long they take, back into it.

    python benchmarks/readme_examples.py            # regenerate README.md (`make readme`)
    python benchmarks/readme_examples.py --check    # run them; exit 1 when README.md shows something else

Marked regions of README.md:

``<!-- readme-example: NAME -->`` … ``<!-- /readme-example -->``
    A ```console block. Lines starting with ``$ `` are commands (a trailing backslash continues one
    on the next line); the lines below a command are what it printed (stdout and stderr as a
    terminal interleaves them). Regeneration rewrites those lines.
``<!-- readme-commands: NAME -->`` … ``<!-- /readme-commands -->``
    A ```bash block of commands, run one by one for their exit status (what they print is not shown).
``<!-- readme-python: NAME -->`` … ``<!-- /readme-python -->``
    A ```python block, run with this Python for its exit status.
``<!-- readme-timings -->`` … ``<!-- /readme-timings -->``
    The timing sentence: wall times measured here, on the machine named in it.

Every region runs in README order in one fresh temporary directory: ``HOME`` inside it (the
default model file and the caches start empty, as for a newcomer), a copy of the repository's
``data/`` as ``./data``, and ``PATH`` starting with the directory of this Python's ``recsys``
console script (the installed package). ``RECSYS_DATA_DIR`` / ``RECSYS_DATA_URL`` are passed on
(without them the reference data is downloaded, as on a first use). In what is written, the
temporary directory disappears from paths (``HOME`` reads ``/home/you``) and the data directory
reads ``$RECSYS_DATA_DIR``.

:func:`comparable` is what a check compares: durations inside log lines and the log lines that
say where the data came from (a data directory, the cache or a download) vary between runs and
machines; everything else must match exactly. Model-dependent numbers change with the engine:
regenerate with ``make readme``.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
REGION = re.compile(r"<!-- readme-(example|commands|python): ([\w-]+) -->\n(.*?)<!-- /readme-\1 -->\n", re.S)
TIMINGS = re.compile(r"(<!-- readme-timings -->\n)(.*?)(<!-- /readme-timings -->\n)", re.S)
HOME = "home/you"
#: log lines that depend on where the reference data was found, not on recsys
_DATA_SOURCE = re.compile(r"^recsys: (using \S+ from |downloading |RECSYS_DATA_DIR=)")
_DURATION = re.compile(r"\b\d+(\.\d+)?s\b")


@dataclass
class Command:
    text: str                   # as written after "$ " (continuation lines included)
    output: str = ""            # what it printed, as shown
    seconds: float = 0.0


@dataclass
class Region:
    kind: str                   # example | commands | python
    name: str
    span: tuple[int, int]       # of the region's body in the README text
    body: str
    commands: list[Command] = field(default_factory=list)


def parse(text: str) -> list[Region]:
    """The marked regions of README ``text``, in order, with their commands and the outputs shown."""
    regions = []
    for m in REGION.finditer(text):
        region = Region(m.group(1), m.group(2), m.span(3), m.group(3))
        lines = _fenced(region.body).splitlines()
        if region.kind == "example":
            i = 0
            while i < len(lines):
                if not lines[i].startswith("$ "):
                    raise ValueError(f"README region {region.name}: expected a '$ ' command, got {lines[i]!r}")
                cmd = [lines[i][2:]]
                while cmd[-1].endswith("\\"):
                    i += 1
                    cmd.append(lines[i])
                i += 1
                shown = []
                while i < len(lines) and not lines[i].startswith("$ "):
                    shown.append(lines[i])
                    i += 1
                region.commands.append(Command("\n".join(cmd), "\n".join(shown).strip("\n")))
        elif region.kind == "commands":
            region.commands = [Command(line) for line in lines if line.strip() and not line.startswith("#")]
        regions.append(region)
    return regions


def _fenced(body: str) -> str:
    m = re.search(r"```\w*\n(.*?)```", body, re.S)
    if m is None:
        raise ValueError(f"README region without a fenced code block: {body[:60]!r}")
    return m.group(1)


class Sandbox:
    """A fresh directory where the README's commands run as a newcomer's would."""

    def __init__(self, directory: Path | None = None):
        self.root = Path(directory or tempfile.mkdtemp(prefix="recsys-readme-")).resolve()
        self.home = self.root / HOME
        self.work = self.root / "work"
        self.home.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(exist_ok=True)
        if not (self.work / "data").exists():
            shutil.copytree(ROOT / "data", self.work / "data")
        bin_dir = Path(sys.executable).parent
        if not (bin_dir / "recsys").exists():
            raise SystemExit(f"no `recsys` console script beside {sys.executable}: install the package first "
                             f"(make venv)")
        keep = {k: v for k, v in os.environ.items()
                if not k.startswith(("RECSYS_", "XDG_")) or k in ("RECSYS_DATA_DIR", "RECSYS_DATA_URL")}
        self.env = {**keep, "HOME": str(self.home), "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                    "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}

    def run(self, command: str) -> tuple[int, str, float]:
        t = time.perf_counter()
        proc = subprocess.run(["bash", "-c", command], cwd=self.work, env=self.env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        return proc.returncode, self.clean(proc.stdout), time.perf_counter() - t

    def python(self, code: str) -> tuple[int, str]:
        proc = subprocess.run([sys.executable, "-c", code], cwd=self.work, env=self.env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        return proc.returncode, proc.stdout

    def clean(self, out: str) -> str:
        out = out.replace(str(self.root), "")
        data = self.env.get("RECSYS_DATA_DIR")
        if data:
            out = out.replace(str(Path(data).resolve()), "$RECSYS_DATA_DIR").replace(data, "$RECSYS_DATA_DIR")
        return "\n".join(line.rstrip() for line in out.strip("\n").splitlines())

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def run_regions(regions: list[Region], sandbox: Sandbox, *, kinds=("example", "commands", "python"),
                log=print) -> None:
    """Run every region (in order) in ``sandbox``; fills each command's output and time, raises on a failure."""
    for region in regions:
        if region.kind not in kinds:
            continue
        if region.kind == "python":
            code, out = sandbox.python(_fenced(region.body))
            if code:
                raise RuntimeError(f"README python block {region.name} failed:\n{out}")
            log(f"python {region.name}: ok")
            continue
        for cmd in region.commands:
            code, out, seconds = sandbox.run(cmd.text)
            if code:
                raise RuntimeError(f"README command failed (exit {code}): {cmd.text}\n{out}")
            cmd.output, cmd.seconds = out, seconds
            log(f"{seconds:6.1f}s  $ {cmd.text.splitlines()[0]}")


def render(region: Region) -> str:
    """The region's body with the outputs of its commands."""
    if region.kind != "example":
        return region.body
    parts = []
    for cmd in region.commands:
        lines = cmd.text.splitlines()
        parts.append("\n".join([f"$ {lines[0]}", *lines[1:]] + ([cmd.output] if cmd.output else [])))
    return "```console\n" + "\n\n".join(parts) + "\n```\n"


def comparable(output: str) -> str:
    """``output`` without what varies between runs: durations in log lines, where the data came from."""
    lines = []
    for line in output.splitlines():
        if _DATA_SOURCE.match(line):
            continue
        lines.append(_DURATION.sub("<t>s", line) if line.startswith("recsys: ") else line)
    return "\n".join(lines)


def texts_encoded(regions: list[Region]) -> int:
    """How many texts the first `recsys fit` encoded (from its log lines)."""
    fit = next(c for r in regions for c in r.commands if r.kind == "example" and c.text.startswith("recsys fit"))
    return sum(int(n) for n in re.findall(r"encoding (\d+) new text", fit.output))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} CPU cores, no GPU used, {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}")


def measure(sandbox: Sandbox, regions: list[Region], repeats: int = 3) -> str:
    """The timing sentence: cold times from the walkthrough run, warm times as medians of ``repeats`` runs."""
    def first(prefix: str) -> Command:
        return next(c for r in regions for c in r.commands if r.kind == "example" and c.text.startswith(prefix))

    def median(command: str) -> float:
        times = []
        for _ in range(repeats):
            code, out, seconds = sandbox.run(command)
            if code:
                raise RuntimeError(f"{command} failed: {out}")
            times.append(seconds)
        return statistics.median(times)

    load = os.getloadavg()[0]
    fit_cold, new_cold = first("recsys fit").seconds, first("recsys topk --new").seconds
    fit_warm = median("recsys fit")
    topk = median("recsys topk --dataset 269_clipart_32 -k 3")
    new_warm = median("recsys topk --new data/new-dataset.json -k 5")
    plan = median("recsys plan --new data/new-dataset.json --budget 3")
    sentence = (f"Timings of the walkthrough, measured by `make readme` on {machine()} (load average {load:.1f} "
                f"when measured; whole-process wall times): `recsys fit` on DomainNet-270 took {fit_cold:.1f} s the "
                f"first time (it encodes {texts_encoded(regions)} texts with MiniLM), {fit_warm:.1f} s once they are "
                f"cached; `recsys topk` took {topk:.1f} s, and `recsys topk --new` {new_cold:.1f} s when the new "
                f"dataset's texts must be encoded (it loads MiniLM), {new_warm:.1f} s when they are cached; "
                f"`recsys plan --new` {plan:.1f} s.")
    return textwrap.fill(sentence, width=100, break_on_hyphens=False) + "\n"


def regenerate(text: str, regions: list[Region], timings: str | None) -> str:
    out, pos = [], 0
    for region in regions:
        out += [text[pos:region.span[0]], render(region)]
        pos = region.span[1]
    out.append(text[pos:])
    new = "".join(out)
    if timings is not None:
        new = TIMINGS.sub(lambda m: m.group(1) + timings + m.group(3), new)
    return new


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="run the examples and compare instead of rewriting")
    ap.add_argument("--readme", type=Path, default=README)
    args = ap.parse_args(argv)
    text = args.readme.read_text(encoding="utf-8")
    regions = parse(text)
    before = {(r.name, i): c.output for r in regions for i, c in enumerate(r.commands)}
    sandbox = Sandbox()
    try:
        run_regions(regions, sandbox, log=lambda m: print(m, file=sys.stderr))
        if args.check:
            bad = [(name, i) for (name, i), shown in before.items()
                   if comparable(shown) != comparable(next(r for r in regions if r.name == name).commands[i].output)]
            for name, i in bad:
                print(f"README region {name}, command {i + 1}: the output shown differs from what it prints now",
                      file=sys.stderr)
            return 1 if bad else 0
        timings = measure(sandbox, regions)
    finally:
        sandbox.close()
    args.readme.write_text(regenerate(text, regions, timings), encoding="utf-8")
    print(f"wrote {args.readme}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

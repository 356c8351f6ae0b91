"""The README's examples: they run verbatim against the installed package and print what the README shows.

The README's outputs are written by ``make readme`` (benchmarks/readme_examples.py); this test runs
the same commands in a fresh directory and compares (durations in log lines and the line saying
where the reference data came from aside, see ``readme_examples.comparable``).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import readme_examples as rx  # noqa: E402

TEXT = rx.README.read_text(encoding="utf-8")
REGIONS = rx.parse(TEXT)


def test_readme_regions_are_marked_and_parse():
    kinds = [(r.kind, r.name) for r in REGIONS]
    assert ("example", "fit") in kinds and ("example", "new-dataset") in kinds
    assert ("commands", "other") in kinds and ("python", "api") in kinds
    assert rx.TIMINGS.search(TEXT), "the timing sentence's markers are missing"
    for region in REGIONS:
        if region.kind == "example":
            assert region.commands and all(c.output for c in region.commands), region.name


def test_readme_examples_write_their_own_files():
    """Only the walkthrough's first `recsys fit` writes the default model; every other command names its file,
    and what they write in the repository root is ignored by git."""
    commands = [c.text for r in REGIONS for c in r.commands]
    fits = [c for c in commands if c.startswith("recsys fit")]
    assert fits[0].split("#")[0].split() == ["recsys", "fit"]
    for cmd in fits[1:] + [c for c in commands if c.startswith("recsys evaluate")]:
        assert "--out" in cmd, cmd
    written = [w for c in commands for w in re.findall(r"(?:--out|>)\s+(\S+)", c.split("#")[0])]
    assert {"my.npz", "all.csv", "results/"} <= set(written)
    if (ROOT / ".git").exists() and subprocess.run(["git", "--version"], capture_output=True).returncode == 0:
        check = subprocess.run(["git", "-C", str(ROOT), "check-ignore", *written], capture_output=True, text=True)
        assert sorted(check.stdout.split()) == sorted(written), check.stdout


def test_readme_timings_name_the_machine():
    sentence = " ".join(rx.TIMINGS.search(TEXT).group(2).split())
    assert re.search(r"measured by `make readme` on .+ \d+ CPU cores, .+ Python \d", sentence), sentence
    assert re.search(r"`recsys fit` on DomainNet-270 took [\d.]+ s the first time \(it encodes \d+ texts", sentence)


@pytest.mark.slow
def test_readme_walkthrough_runs_verbatim_and_prints_what_it_shows(data_dir, tmp_path):
    regions = rx.parse(TEXT)
    shown = {(r.name, i): c.output for r in regions for i, c in enumerate(r.commands) if r.kind == "example"}
    sandbox = rx.Sandbox(tmp_path / "sandbox")
    rx.run_regions(regions, sandbox, kinds=("example",), log=lambda m: None)  # the rest: `make readme`
    for region in regions:
        if region.kind != "example":
            continue
        for i, cmd in enumerate(region.commands):
            assert rx.comparable(cmd.output) == rx.comparable(shown[(region.name, i)]), (
                f"README region {region.name}, `{shlex.split(cmd.text, comments=True)[:3]}`: the README shows\n"
                f"{shown[(region.name, i)]}\nbut it prints\n{cmd.output}\n(run `make readme`)")
    sentence = " ".join(rx.TIMINGS.search(TEXT).group(2).split())
    assert f"it encodes {rx.texts_encoded(regions)} texts" in sentence  # a fresh first fit, like a newcomer's

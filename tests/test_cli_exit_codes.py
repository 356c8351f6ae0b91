"""The command line's error paths, exactly (issue 21: mutants of recsys/cli.py that survived the other tests).

Which model file a command reads (the default one, or none yet), how lazily, and what an unknown dataset's
message says about the model it asked (its file, its zoo, a dataset it holds), down to the defaults used when
the model does not know them.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
from click.testing import CliRunner

import recsys.artifact as artifact
from recsys import cli
from recsys.cli import main
from recsys.errors import RecsysError, UnknownNameError, UsageError

from conftest import ROOT

EXAMPLE = ROOT / "data" / "example-zoo"


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """The example zoo fitted once (hashing encoder, no calibration), its arrays stored as mappable (from 256 bytes)."""
    path = tmp_path_factory.mktemp("cli-model") / "example.npz"
    with mock.patch.object(artifact, "MMAP_MIN_BYTES", 256):
        res = CliRunner().invoke(main, ["-q", "fit", "--zoo", str(EXAMPLE), "--text-encoder", "hashing",
                                        "--no-calibrate", "--out", str(path)])
    assert res.exit_code == 0, res.stderr
    return path


def test_load_model_reads_eagerly_unless_asked(model):
    with mock.patch.object(artifact, "MMAP_MIN_BYTES", 256):
        assert cli._load_model(str(model))._lazy is False
        assert cli._load_model(str(model), lazy=True)._lazy is True


def test_the_default_model_file_when_there_is_one_and_when_there_is_none(model, tmp_path, monkeypatch):
    missing = tmp_path / "none" / "model.npz"
    monkeypatch.setenv("RECSYS_MODEL", str(missing))
    res = CliRunner().invoke(main, ["-q", "topk", "--dataset", "cub birds"])
    assert res.exit_code == 1
    assert res.stderr.strip() == (f"error: run `recsys fit` first, or pass --model FILE: there is no model file at {missing}")
    monkeypatch.setenv("RECSYS_MODEL", str(model))
    res = CliRunner().invoke(main, ["-q", "topk", "--dataset", "cub birds", "-k", "2", "--format", "csv"])
    assert res.exit_code == 0, res.stderr
    assert len(res.stdout.strip().splitlines()) == 3
    assert cli._load_model(None).dataset_ids[0] == "cub birds"  # the default model file, when there is one


@pytest.fixture
def _default_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_MODEL", str(tmp_path / "missing.npz"))


def test_load_model_without_a_default_model(_default_is_missing):
    with pytest.raises(RecsysError, match=r"^run `recsys fit` first, or pass --model FILE: there is no model file at .*missing\.npz$"):
        cli._load_model(None)


def test_an_unknown_dataset_names_the_model_file_its_zoo_and_a_dataset_it_holds(model):
    res = CliRunner().invoke(main, ["-q", "topk", "--model", str(model), "--dataset", "cub bird"])
    assert res.exit_code == 2
    assert res.stderr.strip() == (
        f"error: give a dataset of zoo 'example-zoo' (8 datasets such as 'cub birds'), which model file {str(model)!r} "
        f"was fitted on, or --model FILE fitted on the zoo you mean: unknown dataset 'cub bird'; did you mean 'cub birds'?")


def test_ask_without_a_zoo_name_or_a_path_says_so():
    def unknown():
        raise UnknownNameError("dataset", "x", [])

    rec = SimpleNamespace(dataset_ids=["first", "second"])  # no zoo_, no path_
    with pytest.raises(UsageError) as err:
        cli._ask(rec, unknown)
    assert str(err.value) == ("give a dataset of zoo '?' (2 datasets such as 'first'), which model file '?' was fitted "
                              "on, or --model FILE fitted on the zoo you mean: unknown dataset 'x'")
    rec = SimpleNamespace(dataset_ids=["first"], zoo_={}, path_=Path("m.npz"))
    with pytest.raises(UsageError, match=r"^give a dataset of zoo '\?' \(1 datasets such as 'first'\), which model file 'm\.npz' was fitted on"):
        cli._ask(rec, unknown)


# -- every way _Group.main and _Group.invoke end a command: the one line and the exit status --------------------


def _raising(monkeypatch, exc):
    """`recsys engines` raising ``exc`` (its callback replaced for the test)."""
    def callback():
        raise exc

    monkeypatch.setattr(main.commands["engines"], "callback", callback)


def _run(*args):
    res = CliRunner().invoke(main, list(args))
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res


def test_no_command_shows_the_help_and_exits_2():
    res = _run()
    assert res.exit_code == 2 and res.stderr.startswith("Usage: ") and "Commands:" in res.stderr
    assert "error:" not in res.stderr


@pytest.mark.parametrize("args, message", [
    (["topk", "--bogus"], "error: see 'main topk --help': No such option '--bogus'. Did you mean '--verbose'?"),
    (["--bogus"], "error: see 'main --help': No such option '--bogus'. Did you mean '--verbose'?"),
    (["bogus"], "error: see 'main --help': No such command 'bogus'."),
    (["topk", "--model", ""], "error: correct '--model' (see 'main topk --help'): is empty; give a name, or leave the "
                              "option out for the default"),
    (["topk", "--model", "  "], "error: correct '--model' (see 'main topk --help'): is empty"),
])
def test_usage_errors_are_one_line_with_where_to_look_and_exit_2(args, message):
    res = _run(*args)
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.startswith(message) and len(res.stderr.strip().splitlines()) == 1


def test_a_usage_error_without_a_context_points_to_recsys_help(monkeypatch):
    import click

    def make_context(*args, **kwargs):  # (before any context exists)
        raise click.UsageError("no context here")

    monkeypatch.setattr(main, "make_context", make_context)
    res = _run("engines")
    assert res.exit_code == 2 and res.stderr == "error: see 'recsys --help': no context here\n"


@pytest.mark.parametrize("make, code, line", [
    (lambda: __import__("click").ClickException("a click error"), 1, "error: a click error"),
    (lambda: __import__("click").exceptions.Abort(), 1, "error: aborted"),
    (lambda: RecsysError("a bad input; fix it"), 1, "error: a bad input; fix it"),
    (lambda: UnknownNameError("dataset", "x", ["y"]), 2, "error: unknown dataset 'x'"),
    (lambda: MemoryError(), 1, "error: use a smaller zoo or smaller --param values: out of memory"),
    (lambda: OSError(28, "No space left on device", "/tmp/out.csv"), 1,
     "error: free some space or write elsewhere: No space left on device: /tmp/out.csv"),
    (lambda: OSError(28, "No space left on device"), 1, "error: free some space or write elsewhere: No space left on "
                                                       "device"),
    (lambda: OSError(13, "Permission denied", "/etc/x"), 1, "error: check the permissions: Permission denied: /etc/x"),
    (lambda: OSError(1, "Operation not permitted", "/x"), 1, "error: check the permissions: Operation not "
                                                              "permitted: /x"),
    (lambda: OSError(30, "Read-only file system", "/x"), 1, "error: check the permissions: Read-only file system: /x"),
    (lambda: OSError(27, "File too large", "/x"), 1, "error: free some space or write elsewhere: File too large: /x"),
])
def test_every_error_is_one_line_and_its_exit_status(monkeypatch, make, code, line):
    _raising(monkeypatch, make())
    res = _run("engines")
    assert res.exit_code == code and res.stdout == ""
    assert res.stderr == line + "\n"


def test_a_closed_pipe_ends_quietly_with_1_and_other_os_errors_are_not_hidden(monkeypatch):
    import errno

    _raising(monkeypatch, BrokenPipeError(errno.EPIPE, "Broken pipe"))
    res = CliRunner().invoke(main, ["engines"])
    assert res.exit_code == 1 and res.stderr == ""
    _raising(monkeypatch, OSError(errno.ENOENT, "No such file or directory", "x"))
    res = CliRunner().invoke(main, ["engines"])
    assert isinstance(res.exception, FileNotFoundError)  # a bug, not an input: not turned into a message


def test_a_closed_stdout_is_one_line_on_stderr_and_exit_1(monkeypatch, capsys):
    """Started with stdout closed (`>&-`), Python has sys.stdout None: every result would vanish with exit 0."""
    monkeypatch.setattr("sys.stdout", None)
    with pytest.raises(SystemExit) as exc:
        main.main(["engines"])
    assert exc.value.code == 1
    monkeypatch.undo()
    assert capsys.readouterr().err == ("error: redirect stdout to a file or to /dev/null: it is closed (>&-), and "
                                       "recsys writes its results there\n")


def test_a_command_exits_0_or_with_the_integer_it_returns(monkeypatch):
    res = _run("engines")
    assert res.exit_code == 0 and "hybrid" in res.stdout
    assert main.main(["engines"], standalone_mode=False) is None
    monkeypatch.setattr(main.commands["engines"], "callback", lambda: 3)
    assert _run("engines").exit_code == 3
    monkeypatch.setattr(main.commands["engines"], "callback", lambda: "done")
    assert _run("engines").exit_code == 0


def test_nonempty_lets_names_and_none_through():
    assert cli._nonempty(None, None, None) is None
    assert cli._nonempty(None, None, "m.npz") == "m.npz"
    assert cli._nonempty(None, None, Path("m.npz")) == Path("m.npz")


def test_the_level_reaches_the_answer_through_ask(tmp_path):
    path = tmp_path / "calibrated.npz"
    res = CliRunner().invoke(main, ["-q", "fit", "--zoo", str(EXAMPLE), "--text-encoder", "hashing", "--out", str(path)])
    assert res.exit_code == 0, res.stderr
    for command in (["topk", "--dataset", "stanford cars"], ["predict", "--dataset", "stanford cars"]):  # (a model unknown)
        narrow, wide = (CliRunner().invoke(main, ["-q", *command, "--model", str(path), "--format", "json",
                                                  "--level", level]) for level in ("0.3", "0.95"))
        assert narrow.exit_code == wide.exit_code == 0
        width = [sum(r["upper"] - r["lower"] for r in __import__("json").loads(out.stdout)) for out in (narrow, wide)]
        assert width[0] < width[1]


def test_the_program_name_reaches_the_usage_messages():
    import click

    with pytest.raises(click.UsageError) as err:
        main.main(["topk", "--bogus"], prog_name="recsys-x", standalone_mode=False)
    assert err.value.ctx.command_path == "recsys-x topk"

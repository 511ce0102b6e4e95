"""The one command line, ``python -m utils COMMAND``."""

import subprocess
import sys

import pytest

from utils.cli import COMMANDS, command_module, main


def test_help_lists_every_command():
    done = subprocess.run(
        [sys.executable, "-m", "utils", "--help"], capture_output=True, text=True, check=True
    )
    for name, (_, help_) in COMMANDS.items():
        assert f"{name}" in done.stdout and help_ in done.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_has_a_one_line_help(name):
    parser = command_module(name).parser()
    assert parser.prog == f"python -m utils {name}"
    actions = list(parser._actions)
    for sub in [a for a in actions if a.choices and isinstance(a.choices, dict)]:
        actions += [x for p in sub.choices.values() for x in p._actions]
    missing = [a.dest for a in actions if a.dest != "help" and not a.help]
    assert not missing, f"{name}: options without help: {missing}"
    assert all("\n" not in (a.help or "") for a in actions)


def test_unknown_command_and_no_command(capsys):
    assert main(["nope"]) == 2
    assert "unknown command 'nope'" in capsys.readouterr().err
    assert main([]) == 2


def test_dispatch_runs_the_command(tmp_path, capsys):
    sample = tmp_path / "sample_submission.csv"
    sample.write_text("id,landmarks\nabc,\n")
    good = tmp_path / "submission.csv"
    good.write_text("id,landmarks\nabc,12 0.5\n")
    assert main(["validate", str(good), "--sample", str(sample)]) == 0
    assert "valid" in capsys.readouterr().out

"""The bin/ entry points are thin wrappers of tasks.cli; bin/summary and bin/status on real nights."""
import subprocess

import pytest

from tasks import Publish
from tests.conftest import REPO, SCORE_DATE

COMMANDS = ["status", "invalidate", "approve", "summary", "scheduler", "spark-server"]


def code_lines(path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("name", COMMANDS)
def test_wrapper_is_thin_and_answers_help(ops, name):
    wrapper = REPO / "bin" / name
    assert wrapper.read_text().startswith("#!/bin/sh\n")
    lines = code_lines(wrapper)
    assert len(lines) <= 40, lines
    assert f"-m tasks.cli.{name.replace('-', '_')}" in wrapper.read_text()
    result = ops.run(name, "--help", timeout=120)  # from /, under cron's bare environment
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: bin/{name}")


@pytest.mark.parametrize("name", COMMANDS)
def test_console_script_answers_help(name):
    result = subprocess.run([str(REPO / ".venv" / "bin" / f"nightshift-{name}"), "--help"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


def test_status_of_a_night_without_drops_lists_them_missing(ops, root):
    result = ops.run("status", "--date", SCORE_DATE, timeout=120)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "[pending] DailyScoring(2026-03-02)"
    assert any("[missing] RawClients(2026-03-01)" in line for line in lines)
    assert any(line.endswith("[pending] Predict(2026-03-02) (above)") for line in lines), "printed once"
    assert "raw drop(s) missing" in lines[-1] and " 0 raw drop(s)" not in lines[-1]


def test_summary_of_a_published_night_then_of_an_unpublished_one(ops, scored_root):
    done = ops.run("summary", "--date", SCORE_DATE, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"nightshift {SCORE_DATE}"
    assert lines[1].startswith("  published:  ") and " rows, model " in lines[1]
    assert any(line.startswith("  validation: accepted, PSI ") for line in lines)
    assert any(line.startswith("  quarantine: clients: ") for line in lines)
    assert any(line.endswith(f"reports/date={SCORE_DATE}/report.html") for line in lines)
    assert any(line.startswith("  model:      ") and "holdout AUC" in line for line in lines)
    assert f"  database:   sqlite:///{scored_root}/nightshift.db" in lines
    assert any(line.startswith("  monitoring: realized performance of ") for line in lines)
    assert any(line.startswith("  history:    ") for line in lines)

    assert Publish(date=SCORE_DATE).output().remove()
    undone = ops.run("summary", "--date", SCORE_DATE, timeout=120)
    assert undone.returncode == 1
    assert "  published:  nothing" in undone.stdout.splitlines()

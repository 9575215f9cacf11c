"""Settings are validated before a run does any work: one line naming section, key, value and rule."""
import os
import subprocess
import sys
import time

import pytest

from tasks import DailyScoring, settings
from tasks.errors import ConfigurationError
from tests.conftest import REPO, SCORE_DATE, TEST_CONFIG, build


def test_the_shipped_and_test_settings_are_sound(root):
    assert settings.problems() == []


def test_every_key_of_every_config_class_is_known(root, overlay):
    # Keys come from the luigi.Config classes: a key added there needs no list kept in step here.
    sections = {cls.get_task_family(): cls for cls in settings.config_classes()}
    assert {"paths", "spark", "raw", "features", "model", "validate", "publish", "alerts", "cron"} <= set(sections)
    for section, cls in sections.items():
        instance = cls()
        for name, _ in cls.get_params():
            overlay.set(section, name, getattr(instance, name))
    assert settings.problems() == []


@pytest.mark.parametrize("section, key, value, expected", [
    ("validate", "psi_fail", "0.05", "[validate] psi_warn = 0.1, psi_fail = 0.05: must be psi_warn < psi_fail"),
    ("validate", "psi_warn", "0.25", "[validate] psi_warn = 0.25, psi_fail = 0.25: must be psi_warn < psi_fail"),
    ("validate", "max_quarantine_rate", "1.5", "[validate] max_quarantine_rate = 1.5: must be between 0 and 1"),
    ("validate", "max_mean_shift", "nan", "[validate] max_mean_shift = nan: must be a finite number"),
    ("features", "window_days", "0", "[features] window_days = 0: must be > 0"),
    ("features", "window_days", "thirty", "[features] window_days = 'thirty': expected an integer"),
    ("model", "label_lag_days", "-1", "[model] label_lag_days = -1: must be >= 0"),
    ("model", "retrain", "hourly", "[model] retrain = 'hourly': expected one of daily, monthly, weekly"),
    ("model", "min_training_snapshots", "3",
     "[model] min_training_snapshots = 3, training_snapshots = 2: must be min_training_snapshots <= training_snapshots"),
    ("model", "min_training_snapshots", "1", "[model] min_training_snapshots = 1: must be >= 2"),
    ("raw", "salary_min", "20000000", "[raw] salary_min = 20000000.0, salary_max = 10000000.0: must be salary_min < salary_max"),
    ("raw", "age_max", "18", "[raw] age_min = 18, age_max = 18: must be age_min < age_max"),
    ("raw", "timezone", "Europe/Moskow", "[raw] timezone = 'Europe/Moskow': must be an IANA time zone"),
    ("raw", "encoding", "win-1251", "[raw] encoding = 'win-1251': not a known encoding"),
    ("spark", "conf", "spark.executor.memory", "[spark] conf = 'spark.executor.memory': must be key=value items"),
    ("spark", "driver_memory", "lots", "[spark] driver_memory = 'lots': must be a JVM size"),
    ("publish", "url", "postgres//db", "[publish] url = 'postgres//db': must be empty or an SQLAlchemy URL"),
    ("cron", "catchup_days", "0", "[cron] catchup_days = 0: must be > 0"),
    ("validate", "psi_fial", "0.3", "[validate] psi_fial: unknown key; did you mean psi_fail?"),
    ("model", "retrian", "weekly", "[model] retrian: unknown key; did you mean retrain?"),
])
def test_a_bad_setting_is_named_with_its_value_and_rule(root, overlay, section, key, value, expected):
    overlay.set(section, key, value)
    with pytest.raises(ConfigurationError) as error:
        settings.check()
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_every_broken_rule_is_reported_at_once(root, overlay):
    overlay.set("validate", "psi_fail", "0.05")
    overlay.set("features", "window_days", "-3")
    overlay.set("raw", "timezone", "Moscow")
    found = settings.problems()
    assert len(found) == 3, found
    assert [line.split(" ", 1)[0] for line in found] == ["[features]", "[raw]", "[validate]"]


def test_a_run_with_a_bad_setting_does_nothing(root, overlay):
    overlay.set("validate", "psi_warn", "0.3")
    with pytest.raises(ConfigurationError, match=r"\[validate\] psi_warn = 0.3, psi_fail = 0.25"):
        build(DailyScoring(date=SCORE_DATE))
    assert list(root.iterdir()) == [], "nothing written, not even the SQLite file"


def _cli(cfg, *extra) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "luigi", "--module", "tasks", "DailyScoring", "--date",
                           SCORE_DATE.isoformat(), "--local-scheduler", *extra], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}, timeout=120)
    return proc, time.monotonic() - started


@pytest.mark.parametrize("where", ["config file", "command line"])
def test_luigi_exits_within_seconds_with_one_line_and_no_spark(root, sample_root, tmp_path, where):
    sections = {**TEST_CONFIG, "paths": {"root": root}}
    extra = []
    if where == "config file":
        sections["validate"] = {**TEST_CONFIG["validate"], "psi_fail": "0.05"}
    else:
        extra = ["--validate-psi-fail", "0.05"]
    cfg = tmp_path / "overlay.cfg"
    cfg.write_text("".join(f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())
                           for name, values in sections.items()))
    before = sorted(p for p in root.rglob("*"))

    proc, elapsed = _cli(cfg, *extra)

    output = proc.stdout + proc.stderr
    assert proc.returncode == 40, output
    assert elapsed < 20, f"{elapsed:.1f} s"
    lines = [line for line in output.splitlines() if "ConfigurationError" in line]
    assert len(lines) == 1, output
    assert "[validate] psi_warn = 0.1, psi_fail = 0.05: must be psi_warn < psi_fail" in lines[0]
    assert "Traceback" not in output and "Spark" not in output and "Informed scheduler" not in output
    assert sorted(p for p in root.rglob("*")) == before, "no file written under the root"

"""Raw drops: a night whose inputs have not landed exits with code 20 and names every missing partition."""
import datetime as dt
import os
import subprocess
import sys

from targets import fs
from tasks import DailyScoring
from tasks.raw import RawDrop, describe_missing
from tests.conftest import REPO, SCORE_DATE, TEST_CONFIG

DAY = dt.timedelta(days=1)


def raw_drops(task) -> set[str]:
    """Folders of every raw drop the task needs, walking requires() (which touches no file)."""
    if isinstance(task, RawDrop):
        return {task.output().uri}
    return set().union(*(raw_drops(dep) for dep in task.deps()))


def write_cfg(path, root, **overrides) -> None:
    sections = {**TEST_CONFIG, "paths": {"root": str(root)}, "publish": {"url": f"sqlite:///{root}/nightshift.db"},
                **overrides}
    path.write_text("".join(
        f"[{section}]\n" + "".join(f"{key} = {value}\n" for key, value in values.items())
        for section, values in sections.items()
    ))


def test_missing_raw_partitions_exit_20_with_one_line_per_path_and_no_traceback(scored_root, overlay, tmp_path):
    # The week's model exists (the scored night's Monday); the two nights after it have no drops yet.
    overlay.set("model", "retrain", "weekly")
    late = SCORE_DATE + 2 * DAY
    before = {p.relative_to(scored_root) for p in scored_root.rglob("*")}
    expected = {uri for uri in raw_drops(DailyScoring(date=late)) if not fs.is_file(fs.join(uri, "_SUCCESS"))}
    landing = scored_root / "raw" / "clients" / f"dt={(late - DAY).isoformat()}"
    landing.mkdir(parents=True)
    (landing / "clients.csv").write_text("client_id,sex,age,salary\n")  # still being copied: no _SUCCESS yet
    cfg = tmp_path / "overlay.cfg"
    write_cfg(cfg, scored_root, model={**TEST_CONFIG["model"], "retrain": "weekly"})

    proc = subprocess.run(
        [sys.executable, "-m", "luigi", "--module", "tasks", "DailyScoring", "--date", late.isoformat(),
         "--local-scheduler"],
        cwd=REPO, env={**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}, capture_output=True, text=True, timeout=600,
    )

    output = proc.stdout + proc.stderr
    assert proc.returncode == 20, output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.startswith("nightshift: missing raw partition ")]
    reported = {line.split()[4].rstrip(":"): line for line in lines}
    assert len(lines) == len(reported) == len(expected) == 3  # the snapshot of D-1, transactions of D-2 and D-1
    assert set(reported) == expected
    assert reported[str(landing)].endswith(": no _SUCCESS flag yet (1 file(s) present)")
    assert sum(line.endswith(": folder absent") for line in lines) == len(expected) - 1
    # Nothing was computed, not even a half-written target: only the landing drop is new.
    after = {p.relative_to(scored_root) for p in scored_root.rglob("*")}
    assert after - before == {landing.relative_to(scored_root), (landing / "clients.csv").relative_to(scored_root)}


def test_describe_missing_tells_an_absent_folder_from_a_drop_still_landing(tmp_path):
    assert describe_missing(str(tmp_path / "nothing")) == "folder absent"
    (tmp_path / "part-0.parquet").write_bytes(b"")
    assert describe_missing(str(tmp_path)) == "no _SUCCESS flag yet (1 file(s) present)"

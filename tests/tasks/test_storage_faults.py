"""Storage faults under real tasks: a full disk mid Spark write, a corrupt file inside a complete-looking folder."""
import re
import shlex

import pytest

from targets import fs
from tasks import ClientFeatures, DailyScoring, FeatureTable, Predict, Publish, ValidatePredictions
from tests.bin.conftest import OpsConfig
from tests.conftest import SCORE_DATE, build, families, fill_disk, mount_small_disk


def test_a_full_disk_fails_the_spark_write_naming_the_target_and_the_rerun_finishes(sample_root, caplog):
    features = sample_root / "features"
    mount_small_disk(features)
    try:
        ballast = fill_disk(features, leave=1024)
        task = ClientFeatures(date=SCORE_DATE)
        result = build(task)
        assert families(result["failed"]) == ["ClientFeatures"]
        line = next(r.getMessage() for r in caplog.records if "DiskFullError" in r.getMessage())
        assert (f"DiskFullError: [Errno 28] No space left on device while writing {task.output().uri}: "
                "free space on its filesystem and rerun") in line
        assert "\n" not in line.split("DiskFullError")[1], "one line, no Java stack trace"
        assert not task.output().exists()
        assert fs.list_dir(str(features / "clients")) == [], "the temporary folder was removed"

        ballast.unlink()
        caplog.clear()
        result = build(ClientFeatures(date=SCORE_DATE))
        assert families(result["completed"]) == ["ClientFeatures"]
        assert task.output().exists()
    finally:
        import subprocess

        subprocess.run(["umount", "-l", str(features)], check=True)


def truncate_last_part(folder) -> str:
    """Cut the last data file of a complete folder in half (its footer is gone); the folder keeps _SUCCESS."""
    part = sorted(p for p in folder.iterdir() if p.name.endswith(".parquet"))[-1]
    data = part.read_bytes()
    part.write_bytes(data[: len(data) // 2])
    assert (folder / "_SUCCESS").exists()
    return str(part)


def failure_line(caplog, error: str) -> str:
    return next(r.getMessage() for r in caplog.records if error in r.getMessage())


@pytest.mark.parametrize("damaged, reader, producer", [
    # Spark reads the feature table (its schema check reads the first file's footer only).
    (FeatureTable, Predict, "FeatureTable"),
    # pyarrow reads the predictions.
    (Predict, Publish, "Predict"),
])
def test_a_truncated_part_in_a_complete_folder_fails_its_reader_naming_the_file_and_the_fix(
        scored_root, tmp_path, caplog, damaged, reader, producer):
    from pathlib import Path

    part = truncate_last_part(Path(damaged(date=SCORE_DATE).output().uri))
    # The reader runs again (its output is gone); the damaged folder still looks complete.
    for task in {Predict: [Predict, ValidatePredictions], Publish: []}[reader]:
        fs.delete(task(date=SCORE_DATE).output().uri)
    assert Publish(date=SCORE_DATE).output().remove()
    assert damaged(date=SCORE_DATE).complete()

    result = build(DailyScoring(date=SCORE_DATE))
    assert reader.__name__ in families(result["failed"])
    line = failure_line(caplog, "CorruptTargetError")
    command = f"bin/invalidate {producer} --date {SCORE_DATE} --downstream"
    assert re.search(re.escape(f"CorruptTargetError: {part} is not a readable parquet file (")
                     + r".+\); " + re.escape(f"rebuild it with {command}"), line), line
    assert "\n" not in line.split("CorruptTargetError")[1]

    # The operator types the command the message gives; the rerun finishes the night.
    ops = OpsConfig(tmp_path, scored_root)
    done = ops.run(*shlex.split(command.removeprefix("bin/")))
    assert done.returncode == 0, done.stderr
    assert not damaged(date=SCORE_DATE).complete()
    result = build(DailyScoring(date=SCORE_DATE))
    assert not result["failed"], result["failed"]
    assert Publish(date=SCORE_DATE).complete()

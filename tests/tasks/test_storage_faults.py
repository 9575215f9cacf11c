"""Storage faults under real tasks: a full disk mid Spark write, a corrupt file inside a complete-looking folder."""
import datetime as dt

from targets import fs
from tasks import ClientFeatures
from tests.conftest import SCORE_DATE, build, families, fill_disk, mount_small_disk


def test_a_full_disk_fails_the_spark_write_naming_the_target_and_the_rerun_finishes(sample_root, caplog):
    features = sample_root / "features"
    mount_small_disk(features)
    try:
        ballast = fill_disk(features, leave=16 * 1024)
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

"""Folder targets: complete only when flagged; a crashed write leaves nothing that looks complete."""
import pandas as pd
import pytest

from targets import fs
from targets.directory import DirectoryTarget, ParquetTarget


def test_exception_mid_write_leaves_no_complete_target_and_next_write_succeeds(tmp_path):
    target = ParquetTarget(str(tmp_path / "features" / "date=2026-01-01"))
    with pytest.raises(RuntimeError):
        with target.temporary_path() as tmp:
            fs.write_bytes(fs.join(tmp, "part-0.parquet"), b"half a file")
            raise RuntimeError("killed mid-write")
    assert not target.exists()
    assert not (tmp_path / "features" / "date=2026-01-01").exists()

    frame = pd.DataFrame({"client_id": [1, 2], "score": [0.1, 0.9]})
    target.write_pandas(frame)
    assert target.exists()
    pd.testing.assert_frame_equal(target.read_pandas(), frame)
    assert [n for n in fs.list_dir(str(tmp_path / "features")) if n.startswith(".")] == []


def test_leftovers_of_a_killed_writer_are_removed_never_read(tmp_path):
    target = ParquetTarget(str(tmp_path / "date=2026-01-01"))
    leftover = tmp_path / ".date=2026-01-01.inprogress-deadbeef"
    leftover.mkdir()
    (leftover / "part-0.parquet").write_bytes(b"garbage")
    assert not target.exists()
    target.write_pandas(pd.DataFrame({"x": [1]}))
    assert not leftover.exists()
    assert target.read_pandas()["x"].tolist() == [1]


def test_folder_without_success_flag_is_not_complete(tmp_path):
    folder = tmp_path / "dt=2026-01-01"
    folder.mkdir()
    (folder / "clients.csv").write_text("client_id,sex,age,salary\n")
    target = DirectoryTarget(str(folder))
    assert not target.exists()
    (folder / "_SUCCESS").write_text("")
    assert target.exists()

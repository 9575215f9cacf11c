"""Folder targets: complete only when flagged; a crashed write leaves nothing that looks complete."""
import os
import time

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


def age(path, hours: float) -> None:
    """Date a file or a folder and everything in it `hours` back."""
    stamp = time.time() - hours * 3600
    for folder, _, files in os.walk(path):
        for name in files:
            os.utime(os.path.join(folder, name), (stamp, stamp))
        os.utime(folder, (stamp, stamp))
    os.utime(path, (stamp, stamp))


def test_leftovers_of_a_killed_writer_older_than_a_day_are_removed_and_logged(tmp_path, caplog):
    target = ParquetTarget(str(tmp_path / "date=2026-01-01"))
    leftover = tmp_path / ".date=2026-01-01.inprogress-deadbeef"
    leftover.mkdir()
    (leftover / "part-0.parquet").write_bytes(b"garbage")
    age(leftover, 25)
    assert not target.exists()
    target.write_pandas(pd.DataFrame({"x": [1]}))
    assert not leftover.exists()
    assert target.read_pandas()["x"].tolist() == [1]
    assert f"removed {leftover}, left by a write that did not finish 25.0 h ago" in caplog.text


def test_a_younger_sibling_may_be_a_concurrent_writer_and_is_left_alone(tmp_path):
    """Two runs writing the same target at once: neither removes the other's folder mid-write."""
    target = ParquetTarget(str(tmp_path / "date=2026-01-01"))
    with target.temporary_path() as first:
        fs.resolve(first)[0].create_dir(fs.resolve(first)[1])
        fs.write_bytes(fs.join(first, "part-0.parquet"), b"being written")
        target.write_pandas(pd.DataFrame({"x": [2]}))  # the second writer starts and finishes meanwhile
        assert fs.read_bytes(fs.join(first, "part-0.parquet")) == b"being written"
        fs.delete(fs.join(first, "part-0.parquet"))
        pd.DataFrame({"x": [1]}).to_parquet(fs.join(first, "part-0.parquet"))
    assert target.read_pandas()["x"].tolist() == [1], "the write that finished last replaced the folder"
    assert [n for n in fs.list_dir(str(tmp_path)) if n.startswith(".")] == []


def test_temporary_files_of_killed_single_file_writes_are_swept_after_a_day(tmp_path, caplog):
    report = tmp_path / "reports" / "validation.json"
    report.parent.mkdir()
    old, young = tmp_path / "reports" / "validation.json.tmp-0badf00d", tmp_path / "reports" / "validation.json.tmp-1234abcd"
    old.write_bytes(b'{"half')
    young.write_bytes(b'{"being written')
    age(old, 30)
    fs.write_bytes(str(report), b"{}")
    assert sorted(p.name for p in report.parent.iterdir()) == ["validation.json", young.name]
    assert f"removed {old}" in caplog.text


def test_folder_without_success_flag_is_not_complete(tmp_path):
    folder = tmp_path / "dt=2026-01-01"
    folder.mkdir()
    (folder / "clients.csv").write_text("client_id,sex,age,salary\n")
    target = DirectoryTarget(str(folder))
    assert not target.exists()
    (folder / "_SUCCESS").write_text("")
    assert target.exists()

"""The filesystem layer: local paths, file:// URIs and (with a stand-in object store) s3a:// translation."""
import os
import re

import pandas as pd
import pyarrow.fs as pafs
import pytest

from nightshift.errors import ConfigurationError, DiskFullError
from targets import fs
from targets.directory import ParquetTarget


@pytest.mark.parametrize("uri, folder", [
    ("s3a://bucket/root/models/2026-03-02", "s3a://bucket/root/models"),
    ("s3a://bucket/root", "s3a://bucket/"),
    ("s3a://bucket", "s3a://bucket/"),
    ("hdfs://namenode:8020/data/x/", "hdfs://namenode:8020/data"),
    ("file:///tmp/data/x", "file:///tmp/data"),
    ("file:///x", "file:///"),
    ("file:/tmp/data/x", "file:/tmp/data"),
    ("/tmp/data/x", "/tmp/data"),
    ("/x", "/"),
    ("data/x", "data"),
    ("data", "."),
])
def test_parent_stays_on_the_same_filesystem(uri, folder):
    assert fs.parent(uri) == folder


@pytest.mark.parametrize("uri, parts, joined", [
    ("s3a://bucket/root/", ("models", "m.pkl"), "s3a://bucket/root/models/m.pkl"),
    ("s3a://bucket", ("/models/",), "s3a://bucket/models"),
    ("file:///", ("tmp",), "file:///tmp"),
    ("/", ("tmp", "x"), "/tmp/x"),
    ("data", ("a/b", "c"), "data/a/b/c"),
])
def test_join(uri, parts, joined):
    assert fs.join(uri, *parts) == joined


@pytest.mark.parametrize("form", ["plain", "file:///", "file://localhost/", "file:/"])
def test_local_paths_and_file_uris_reach_the_same_files(tmp_path, form):
    uri = str(tmp_path / "reports" / "validation.json")
    if form != "plain":
        uri = form + uri.lstrip("/")
    fs.write_bytes(uri, b'{"verdict": "accepted"}')
    assert (tmp_path / "reports" / "validation.json").read_bytes() == b'{"verdict": "accepted"}'
    assert fs.is_file(uri) and fs.exists(fs.parent(uri))
    assert fs.read_bytes(uri) == b'{"verdict": "accepted"}'
    assert fs.list_dir(fs.parent(uri)) == ["validation.json"]
    assert fs.delete(fs.parent(uri))
    assert not fs.exists(uri) and not fs.delete(uri)


def test_file_uri_naming_another_host_is_refused():
    with pytest.raises(ConfigurationError, match="file:// URI must name no host"):
        fs.resolve("file://otherhost/tmp/x")


def test_spark_gets_absolute_local_paths_and_untouched_uris(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert fs.spark_uri("data/x") == str(tmp_path / "data" / "x")
    for uri in ("s3a://bucket/x", "hdfs://nn:8020/x", "file:///tmp/x"):
        assert fs.spark_uri(uri) == uri


def test_parquet_dataset_under_a_file_uri(tmp_path):
    target = ParquetTarget("file://" + str(tmp_path / "predictions" / "date=2026-03-02"))
    frame = pd.DataFrame({"client_id": [1, 2], "score": [0.25, 0.75]})
    target.write_pandas(frame)
    assert target.exists()
    assert (tmp_path / "predictions" / "date=2026-03-02" / "_SUCCESS").is_file()
    pd.testing.assert_frame_equal(target.read_pandas(), frame)


def test_moving_a_folder_replaces_nothing_but_the_target_locally(tmp_path):
    src, dst = tmp_path / "a", tmp_path / "b" / "c"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "part-0").write_bytes(b"x")
    fs.move(str(src), str(dst))
    assert (dst / "sub" / "part-0").read_bytes() == b"x" and not src.exists()


class ObjectStore:
    """A stand-in S3 bucket over a local folder: no directory rename, and a log of what was done."""

    type_name = "s3"

    def __init__(self, base):
        self.base, self.local, self.log = str(base), pafs.LocalFileSystem(), []

    def _p(self, path):
        return os.path.join(self.base, path)

    def get_file_info(self, what):
        if isinstance(what, pafs.FileSelector):
            infos = self.local.get_file_info(pafs.FileSelector(self._p(what.base_dir), recursive=what.recursive))
            return [pafs.FileInfo(os.path.relpath(i.path, self.base), i.type) for i in infos]
        info = self.local.get_file_info(self._p(what))
        return pafs.FileInfo(what, info.type)

    def create_dir(self, path, recursive=True):
        self.local.create_dir(self._p(path), recursive=recursive)

    def open_output_stream(self, path):
        self.log.append(("put", path))
        return self.local.open_output_stream(self._p(path))

    def open_input_stream(self, path):
        return self.local.open_input_stream(self._p(path))

    def copy_file(self, src, dst):
        self.log.append(("copy", src, dst))
        self.local.create_dir(os.path.dirname(self._p(dst)), recursive=True)
        self.local.copy_file(self._p(src), self._p(dst))

    def move(self, src, dst):
        if self.local.get_file_info(self._p(src)).type == pafs.FileType.Directory:
            raise OSError("S3 cannot rename a directory")
        self.local.move(self._p(src), self._p(dst))

    def delete_file(self, path):
        self.log.append(("delete", path))
        self.local.delete_file(self._p(path))

    def delete_dir(self, path):
        self.log.append(("delete_dir", path))
        self.local.delete_dir(self._p(path))


@pytest.fixture
def bucket(tmp_path, monkeypatch):
    connected = []
    store = ObjectStore(tmp_path)

    def connect(uri):
        connected.append(uri)
        return store

    monkeypatch.setattr(fs, "_connect", connect)
    monkeypatch.setattr(fs, "_filesystems", {})
    store.connected = connected
    return store


def test_s3a_uris_become_pyarrow_s3_paths_with_one_connection_per_bucket(bucket):
    filesystem, path = fs.resolve("s3a://bank-data/nightshift/models/2026-03-02/model.pkl")
    assert filesystem is bucket
    assert path == "bank-data/nightshift/models/2026-03-02/model.pkl"
    assert fs.resolve("s3a://bank-data/nightshift/reports/")[1] == "bank-data/nightshift/reports"
    assert fs.resolve("s3a://bank-data")[1] == "bank-data"
    assert bucket.connected == ["s3://bank-data/nightshift/models/2026-03-02/model.pkl"]
    assert fs.pyarrow_uri("s3a://b/k") == "s3://b/k"
    assert fs.pyarrow_uri("hdfs://nn:8020/k") == "hdfs://nn:8020/k"


def test_folder_lands_on_an_object_store_flag_last_and_replaces_the_old_one_flag_first(bucket, tmp_path):
    uri = "s3a://bank-data/root/models/2026-03-02"
    old = tmp_path / "bank-data" / "root" / "models" / "2026-03-02"
    old.mkdir(parents=True)
    (old / "stale.pkl").write_bytes(b"old")
    (old / "_SUCCESS").write_bytes(b"")

    with fs.temporary_dir(uri) as tmp:
        for name in ("model.pkl", "metadata.json", "_SUCCESS"):
            fs.write_bytes(fs.join(tmp, name), name.encode())

    assert sorted(os.listdir(old)) == ["_SUCCESS", "metadata.json", "model.pkl"]
    assert not [n for n in os.listdir(old.parent) if n.startswith(".")]
    deleted_flag = bucket.log.index(("delete", "bank-data/root/models/2026-03-02/_SUCCESS"))
    deleted_dir = bucket.log.index(("delete_dir", "bank-data/root/models/2026-03-02"))
    copies = [entry for entry in bucket.log if entry[0] == "copy"]
    assert deleted_flag < deleted_dir < bucket.log.index(copies[0])
    assert copies[-1][2] == "bank-data/root/models/2026-03-02/_SUCCESS"
    assert len(copies) == 3
    # Uploads go straight to their key (an upload is all-or-nothing): no temporary object renamed.
    assert not [entry for entry in bucket.log if entry[0] == "put" and ".tmp-" in entry[1]]


def test_filesystem_options_reach_pyarrow_as_uri_options(bucket, overlay):
    overlay.set("paths", "filesystem_options", "endpoint_override=127.0.0.1:9000 | scheme=http\nregion=eu-west-1")
    filesystem, path = fs.resolve("s3a://bank-data/root/x")
    assert path == "bank-data/root/x"
    assert bucket.connected == ["s3://bank-data/root/x"]
    assert fs.filesystem_options() == {"endpoint_override": "127.0.0.1:9000", "scheme": "http", "region": "eu-west-1"}
    overlay.set("paths", "filesystem_options", "endpoint_override")
    with pytest.raises(ConfigurationError, match=r"\[paths\] filesystem_options = .*: expected key=value"):
        fs.resolve("s3a://bank-data/root/x")


def test_a_real_pyarrow_s3_filesystem_gets_the_configured_endpoint_without_connecting(overlay, monkeypatch):
    monkeypatch.setattr(fs, "_filesystems", {})
    overlay.set("paths", "filesystem_options", "endpoint_override=127.0.0.1:9000|scheme=http|region=eu-west-1")
    filesystem, path = fs.resolve("s3a://bank-data/root/models")
    settings = filesystem.__reduce__()[1][0]
    assert (filesystem.type_name, path) == ("s3", "bank-data/root/models")
    assert (settings["endpoint_override"], settings["scheme"], settings["region"]) == ("127.0.0.1:9000", "http", "eu-west-1")


def test_a_full_disk_fails_the_write_naming_the_file_and_leaves_no_temporary_file(small_disk):
    from tests.conftest import fill_disk

    uri = str(small_disk / "reports" / "validation.json")
    ballast = fill_disk(small_disk)
    with pytest.raises(DiskFullError, match=r"^\[Errno 28\] No space left on device while writing "
                       + re.escape(uri) + ": free space") as caught:
        fs.write_bytes(uri, b"x" * 100_000)
    assert isinstance(caught.value, OSError) and "\n" not in str(caught.value)
    assert fs.list_dir(str(small_disk / "reports")) == []
    ballast.unlink()
    fs.write_bytes(uri, b"x" * 100_000)
    assert fs.read_bytes(uri) == b"x" * 100_000


def test_a_full_disk_mid_folder_write_leaves_nothing_complete_and_the_rerun_finishes(small_disk):
    from tests.conftest import fill_disk

    target = ParquetTarget(str(small_disk / "features" / "date=2026-03-02"))
    frame = pd.DataFrame({"client_id": range(50_000), "score": [k / 50_000 for k in range(50_000)]})
    ballast = fill_disk(small_disk, leave=64 * 1024)
    with pytest.raises(DiskFullError, match="No space left on device while writing " + re.escape(target.uri)):
        target.write_pandas(frame)
    assert not target.exists()
    assert fs.list_dir(str(small_disk / "features")) == [], "the temporary folder was removed"
    ballast.unlink()
    target.write_pandas(frame)
    assert target.exists() and len(target.read_pandas()) == 50_000

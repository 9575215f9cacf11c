"""The one filesystem layer of the Python side: local paths and any URI pyarrow knows (hdfs://, s3://)."""
import os
import uuid
from contextlib import contextmanager
from typing import Iterator

import pyarrow.fs as pafs


def _has_scheme(uri: str) -> bool:
    return "://" in uri


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem and in-filesystem path of a local path or URI."""
    if not _has_scheme(uri) or uri.startswith("file://"):
        local = uri[len("file://"):] if uri.startswith("file://") else uri
        return pafs.LocalFileSystem(), os.path.abspath(local)
    # Spark's s3a:// is pyarrow's s3://.
    if uri.startswith("s3a://"):
        uri = "s3://" + uri[len("s3a://"):]
    return pafs.FileSystem.from_uri(uri)


def spark_uri(uri: str) -> str:
    """The form Spark reads and writes: local paths made absolute, URIs untouched."""
    return uri if _has_scheme(uri) else os.path.abspath(uri)


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *parts])


def parent(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[0] if "/" in uri.rstrip("/") else "."


def basename(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


def exists(uri: str) -> bool:
    fs, path = resolve(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def is_file(uri: str) -> bool:
    fs, path = resolve(uri)
    return fs.get_file_info(path).type == pafs.FileType.File


def list_dir(uri: str) -> list[str]:
    """Names directly inside a folder (empty when it does not exist)."""
    fs, path = resolve(uri)
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        return []
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=False))
    return sorted(info.base_name for info in infos)


def read_bytes(uri: str) -> bytes:
    fs, path = resolve(uri)
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except (OSError, FileNotFoundError) as exc:
        raise OSError(f"cannot read {uri}: {exc}") from exc


def write_bytes(uri: str, data: bytes) -> None:
    """Write a file atomically: a sibling temporary file renamed over the target."""
    fs, path = resolve(uri)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with fs.open_output_stream(tmp) as f:
            f.write(data)
        fs.move(tmp, path)
    except BaseException:
        _delete(fs, tmp)
        raise


def delete(uri: str) -> bool:
    """Delete a file or a folder tree; True when something was there."""
    fs, path = resolve(uri)
    return _delete(fs, path)


def _delete(fs: pafs.FileSystem, path: str) -> bool:
    kind = fs.get_file_info(path).type
    if kind == pafs.FileType.Directory:
        fs.delete_dir(path)
    elif kind == pafs.FileType.File:
        fs.delete_file(path)
    return kind != pafs.FileType.NotFound


def move(src: str, dst: str) -> None:
    fs, src_path = resolve(src)
    _, dst_path = resolve(dst)
    fs.create_dir(dst_path.rsplit("/", 1)[0], recursive=True)
    fs.move(src_path, dst_path)


@contextmanager
def temporary_dir(uri: str) -> Iterator[str]:
    """Yield a hidden sibling folder to write into; on success it replaces `uri`, on error it is removed.

    Leftovers of writes that crashed earlier (hidden siblings of the same name) are removed first:
    they are never read. The hidden prefix keeps Spark and pyarrow from reading them as data.
    """
    name = basename(uri)
    folder = parent(uri)
    prefix = f".{name}.inprogress-"
    for leftover in list_dir(folder):
        if leftover.startswith(prefix):
            delete(join(folder, leftover))
    tmp = join(folder, prefix + uuid.uuid4().hex[:8])
    try:
        yield tmp
        delete(uri)
        move(tmp, uri)
    except BaseException:
        delete(tmp)
        raise

"""The one filesystem layer of the Python side: local paths, file:// and any URI pyarrow knows (hdfs://, s3a://)."""
import errno
import logging
import os
import re
import time
import urllib.parse
import uuid
from contextlib import contextmanager
from typing import Iterator

import luigi.configuration
import pyarrow.fs as pafs

from nightshift.errors import ConfigurationError, DiskFullError

# Written last into a folder and removed first from it: a reader that checks it never sees half a folder.
FLAG = "_SUCCESS"

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
# Object stores have no directory rename: a folder is moved file by file.
_OBJECT_STORES = {"s3", "gcs"}
# Spark/Hadoop scheme -> pyarrow scheme.
_PYARROW_SCHEMES = {"s3a": "s3", "s3n": "s3"}
_filesystems: dict[tuple[int, str, str], pafs.FileSystem] = {}
# A write still running (another process writing the same target) is younger than this; a leftover of a
# killed write is older. A night's longest write takes minutes, so a day leaves a wide margin.
LEFTOVER_AGE_SECONDS = 24 * 3600
_NO_SPACE = "No space left on device"

logger = logging.getLogger("luigi-interface")


def scheme(uri: str) -> str:
    """The URI's scheme (`hdfs`, `s3a`, `file`), or '' for a plain local path."""
    match = _SCHEME.match(uri)
    # A one-letter "scheme" is a Windows drive, not a URI.
    return match.group(1).lower() if match and len(match.group(1)) > 1 else ""


def is_local(*uris: str) -> bool:
    """Whether every URI is on the local filesystem: where Python workers read and write the files themselves,
    seeing them at the driver's paths (one machine, or a mount every node has at the same place)."""
    return all(scheme(uri) in ("", "file") for uri in uris)


def _local_path(uri: str) -> str:
    """file:///p, file://localhost/p and Hadoop's file:/p as a local path; plain paths unchanged."""
    if scheme(uri) != "file":
        return uri
    rest = uri[len("file:"):]
    if rest.startswith("//"):
        authority, _, path = rest[2:].partition("/")
        if authority not in ("", "localhost"):
            raise ConfigurationError(f"{uri}: a file:// URI must name no host (or localhost)")
        return "/" + path
    return rest


def pyarrow_uri(uri: str) -> str:
    """The URI pyarrow's `FileSystem.from_uri` understands for a Spark URI: s3a:// becomes s3://."""
    name = scheme(uri)
    if name in _PYARROW_SCHEMES:
        return _PYARROW_SCHEMES[name] + uri[len(name):]
    return uri


def _split(uri: str) -> tuple[str, str]:
    """(`scheme://authority`, path) of a URI with an authority; ('', uri) otherwise (local, file:/p)."""
    name = scheme(uri)
    rest = uri[len(name) + 1:] if name else uri
    if not name or not rest.startswith("//"):
        return "", uri
    authority, slash, path = rest[2:].partition("/")
    return f"{name}://{authority}", slash + path


def parse_options(text: str, setting: str) -> dict[str, str]:
    """`key=value` items, one per line or separated by `|`; blank items and `#` comments skipped.

    A later item overrides an earlier one with the same key. Values may contain `=` (only the first one
    splits), not `|`. `setting` (`[spark] conf`) names the setting in the ConfigurationError of a bad item.
    """
    options = {}
    for item in (part.strip() for line in text.splitlines() for part in line.split("|")):
        if item and not item.startswith("#"):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ConfigurationError(f"{setting} = {text!r}: expected key=value items, got {item!r}")
            options[key.strip()] = value.strip()
    return options


def filesystem_options() -> dict[str, str]:
    """`[paths] filesystem_options`: pyarrow URI options (`endpoint_override=...|scheme=http|region=...`)."""
    text = luigi.configuration.get_config().get("paths", "filesystem_options", "")
    return parse_options(text, "[paths] filesystem_options")


def _connect(uri: str) -> pafs.FileSystem:
    """A pyarrow filesystem for a URI; settings from `[paths] filesystem_options` and the environment (AWS_*, CLASSPATH)."""
    options = filesystem_options()
    if options:
        uri += ("&" if "?" in uri else "?") + urllib.parse.urlencode(options)
    return pafs.FileSystem.from_uri(uri)[0]


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem and in-filesystem path of a local path or URI (one filesystem per cluster or bucket)."""
    if scheme(uri) in ("", "file"):
        return pafs.LocalFileSystem(), os.path.abspath(_local_path(uri))
    target = pyarrow_uri(uri)
    top, path = _split(target)
    path, _, query = path.partition("?")
    key = (os.getpid(), top + ("?" + query if query else ""), repr(filesystem_options()))
    if key not in _filesystems:
        # Connecting (HDFS's JNI client, S3's region lookup) costs; a forked process makes its own.
        _filesystems[key] = _connect(target)
    filesystem = _filesystems[key]
    if filesystem.type_name in _OBJECT_STORES:
        # Object stores take bucket/key.
        return filesystem, (top.split("://", 1)[1] + path).rstrip("/")
    return filesystem, path.rstrip("/") or "/"


def spark_uri(uri: str) -> str:
    """The form Spark reads and writes: local paths made absolute, URIs untouched."""
    return uri if scheme(uri) else os.path.abspath(uri)


def join(uri: str, *parts: str) -> str:
    """`uri/part/...` for a local path or URI; parts are relative (slashes at their ends are dropped)."""
    base = uri.rstrip("/")
    if scheme(uri) and base == f"{scheme(uri)}:" and uri.startswith(base + "//"):
        base += "//"  # the root of file:/// keeps its empty authority
    return "/".join([base, *(part.strip("/") for part in parts)])


def parent(uri: str) -> str:
    """The folder holding `uri`; a filesystem root or bucket is its own parent (`s3a://bucket/`)."""
    top, path = _split(uri)
    if not top and scheme(uri) == "file":
        top, path = "file:", uri[len("file:"):]
    trimmed = path.rstrip("/")
    if "/" not in trimmed:
        return top + "/" if top or path.startswith("/") else "."
    return top + (trimmed.rsplit("/", 1)[0] or "/")


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


def data_files(uri: str) -> list[str]:
    """Names of the data files of a dataset folder: all but the bookkeeping (`_SUCCESS`, `_manifest.json`, Spark's
    and Hadoop's `_*` and `.*` files)."""
    return [name for name in list_dir(uri) if not name.startswith(("_", "."))]


def file_stats(uri: str) -> list[tuple[str, int, int]]:
    """(path relative to the folder, size in bytes, modification time in ns) of every file under a folder,
    recursively, sorted; one listing call, no file is opened. Empty when the folder does not exist."""
    fs, path = resolve(uri)
    try:
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    except FileNotFoundError:
        return []
    stats = [(info.path[len(path):].lstrip("/"), info.size, info.mtime_ns or 0)
             for info in infos if info.type == pafs.FileType.File]
    return sorted(stats)


def read_bytes(uri: str) -> bytes:
    fs, path = resolve(uri)
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except (OSError, FileNotFoundError) as exc:
        raise OSError(f"cannot read {uri}: {exc}") from exc


def _is_object_store(fs: pafs.FileSystem) -> bool:
    return fs.type_name in _OBJECT_STORES


def write_bytes(uri: str, data: bytes) -> None:
    """Write a file atomically: a sibling temporary file renamed over the target.

    On an object store an upload is already all-or-nothing (the object appears only once complete),
    so the file is written in place. Temporary siblings of the same file left by killed writes and
    older than a day are removed first. A full disk raises DiskFullError naming the file.
    """
    fs, path = resolve(uri)
    try:
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        if _is_object_store(fs):
            with fs.open_output_stream(path) as f:
                f.write(data)
            return
        sweep_leftovers(parent(uri), f"{basename(uri)}.tmp-")
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            with fs.open_output_stream(tmp) as f:
                f.write(data)
            fs.move(tmp, path)
        except BaseException:
            _delete(fs, tmp)
            raise
    except OSError as exc:
        if is_disk_full(exc) and not isinstance(exc, DiskFullError):
            raise disk_full(uri, exc) from exc
        raise


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC from Python or pyarrow, or a Spark/Hadoop error whose text (Java causes included) says so."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if getattr(exc, "errno", None) == errno.ENOSPC or _NO_SPACE in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def disk_full(uri: str, exc: BaseException) -> DiskFullError:
    """One line for the operator: which write, and that the disk is full (not the Java stack trace)."""
    return DiskFullError(errno.ENOSPC, f"{_NO_SPACE} while writing {uri}: free space on its filesystem and rerun; "
                                       f"nothing was left that looks complete ({type(exc).__name__})")


def _age_seconds(fs: pafs.FileSystem, info: pafs.FileInfo) -> float | None:
    """Seconds since a file or folder (its newest file) was last written; None when the store cannot say."""
    stamps = [info.mtime] if info.mtime is not None else []
    if info.type == pafs.FileType.Directory:
        stamps += [i.mtime for i in fs.get_file_info(pafs.FileSelector(info.path, recursive=True))
                   if i.mtime is not None]
    if not stamps:
        return None
    return time.time() - max(stamp.timestamp() for stamp in stamps)


def sweep_leftovers(folder: str, prefix: str, max_age: float | None = None) -> list[str]:
    """Remove the entries of `folder` named `prefix...` and older than `max_age` seconds (default a day); logged.

    Younger ones may belong to a write running now in another process (a second run of the same night): left alone.
    """
    max_age = LEFTOVER_AGE_SECONDS if max_age is None else max_age
    fs, path = resolve(folder)
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        return []
    removed = []
    for info in fs.get_file_info(pafs.FileSelector(path, recursive=False)):
        if not info.base_name.startswith(prefix):
            continue
        age = _age_seconds(fs, info)
        if age is not None and age < max_age:
            continue
        try:
            _delete(fs, info.path)
        except (FileNotFoundError, OSError) as exc:  # another run swept it first
            if fs.get_file_info(info.path).type != pafs.FileType.NotFound:
                raise OSError(f"cannot remove the leftover {join(folder, info.base_name)}: {exc}") from exc
            continue
        removed.append(join(folder, info.base_name))
        logger.warning("removed %s, left by a write that did not finish %s ago", removed[-1],
                       "an unknown time" if age is None else f"{age / 3600:.1f} h")
    return removed


def delete(uri: str) -> bool:
    """Delete a file or a folder tree (its `_SUCCESS` flag first); True when something was there."""
    fs, path = resolve(uri)
    return _delete(fs, path)


def _delete(fs: pafs.FileSystem, path: str) -> bool:
    kind = fs.get_file_info(path).type
    if kind == pafs.FileType.Directory:
        flag = f"{path}/{FLAG}"
        if fs.get_file_info(flag).type == pafs.FileType.File:
            fs.delete_file(flag)
        fs.delete_dir(path)
    elif kind == pafs.FileType.File:
        fs.delete_file(path)
    return kind != pafs.FileType.NotFound


def move(src: str, dst: str) -> None:
    """Rename a file or folder: atomic on a local disk and HDFS; file by file (flag last) on an object store."""
    fs, src_path = resolve(src)
    dst_fs, dst_path = resolve(dst)
    if dst_fs.type_name != fs.type_name:
        raise ValueError(f"cannot move {src} to {dst}: different filesystems")
    fs.create_dir(dst_path.rsplit("/", 1)[0], recursive=True)
    if _is_object_store(fs) and fs.get_file_info(src_path).type == pafs.FileType.Directory:
        _copy_tree(fs, src_path, dst_path)
        fs.delete_dir(src_path)
    else:
        fs.move(src_path, dst_path)


def _copy_tree(fs: pafs.FileSystem, src: str, dst: str) -> None:
    """Copy every file of a folder, the `_SUCCESS` flag (if any) last, so the copy looks complete only once it is."""
    files = [info.path for info in fs.get_file_info(pafs.FileSelector(src, recursive=True))
             if info.type == pafs.FileType.File]
    flag = f"{src}/{FLAG}"
    for path in sorted(files, key=lambda p: p == flag):
        fs.copy_file(path, dst + path[len(src):])


def _hidden_sibling(uri: str, kind: str) -> str:
    """A new name `.<name>.<kind>-<random>` beside `uri`, once the leftovers of that kind older than a day are gone."""
    folder = parent(uri)
    prefix = f".{basename(uri)}.{kind}-"
    sweep_leftovers(folder, prefix)
    return join(folder, prefix + uuid.uuid4().hex[:8])


@contextmanager
def scratch_dir(uri: str) -> Iterator[str]:
    """Yield a hidden sibling folder of `uri` for intermediate files; it is removed afterwards, whatever happens.

    Leftovers of runs that crashed (hidden siblings of the same name older than a day) are removed first.
    """
    tmp = _hidden_sibling(uri, "scratch")
    try:
        yield tmp
    except BaseException as exc:
        _raise_disk_full(uri, tmp, exc)
        raise
    finally:
        delete(tmp)


@contextmanager
def temporary_dir(uri: str) -> Iterator[str]:
    """Yield a hidden sibling folder to write into; on success it replaces `uri`, on error it is removed.

    Leftovers of writes that crashed earlier (hidden siblings of the same name older than a day) are removed
    first: they are never read. A younger sibling may be another process writing the same target right now, so
    it is left alone; whichever write finishes last replaces the folder. The hidden prefix keeps Spark and
    pyarrow from reading them as data. A full disk (in Python, pyarrow or Spark) raises DiskFullError naming
    `uri`. On an object store the final move is a copy: a crash during it leaves `uri` without its `_SUCCESS`
    flag (incomplete, redone by the next run), never a flagged half.
    """
    tmp = _hidden_sibling(uri, "inprogress")
    try:
        yield tmp
        delete(uri)
        move(tmp, uri)
    except BaseException as exc:
        delete(tmp)
        _raise_disk_full(uri, tmp, exc)
        raise


def _raise_disk_full(uri: str, tmp: str, exc: BaseException) -> None:
    """Raise DiskFullError naming `uri` when `exc` is a full disk met while writing it through its hidden folder
    `tmp`. One naming a file inside the hidden folder (its manifest, say) is about this target, so it names `uri`."""
    if is_disk_full(exc) and (not isinstance(exc, DiskFullError) or tmp in str(exc)):
        raise disk_full(uri, exc) from exc

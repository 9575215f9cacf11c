"""Folder targets: complete only when their `_SUCCESS` flag exists, written whole or not at all."""
import json
from contextlib import contextmanager
from typing import Iterator

import luigi

from nightshift.errors import CorruptTargetError
from targets import fs

SUCCESS = fs.FLAG
# What made the folder (written by the task that wrote it, inside the same atomic write): see docs/provenance.md.
MANIFEST = "_manifest.json"


def encode_manifest(manifest: dict) -> bytes:
    return json.dumps(manifest, indent=2, sort_keys=True, default=str, ensure_ascii=False).encode()


def decode_manifest(uri: str) -> dict | None:
    """The manifest at `uri`; None when there is none. One that cannot be parsed comes back as
    {"unreadable": why}: it proves nothing, so its folder counts as stale, never as unknown."""
    try:
        data = fs.read_bytes(uri)
    except OSError:
        return None
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        return {"unreadable": f"{uri}: {exc}"}
    return manifest if isinstance(manifest, dict) else {"unreadable": f"{uri}: not a JSON object"}


class DirectoryTarget(luigi.Target):
    """A folder (local path or URI) that exists, for Luigi, only once `_SUCCESS` is in it."""

    def __init__(self, uri: str):
        self.uri = uri

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

    @property
    def path(self) -> str:
        return self.uri

    @property
    def spark_path(self) -> str:
        return fs.spark_uri(self.uri)

    def exists(self) -> bool:
        return fs.is_file(fs.join(self.uri, SUCCESS))

    def file(self, name: str) -> str:
        return fs.join(self.uri, name)

    @contextmanager
    def temporary_path(self, manifest: dict | None = None) -> Iterator[str]:
        """Write the whole folder under a hidden sibling; it becomes the target (flagged) on success.

        `manifest`, when given, is written as `_manifest.json` into the folder before it becomes the target,
        so the record of what made the data is never missing from, nor older than, the data.
        """
        with fs.temporary_dir(self.uri) as tmp:
            yield tmp
            if manifest is not None:
                self._write_manifest(tmp, manifest)
            if not fs.is_file(fs.join(tmp, SUCCESS)):
                fs.write_bytes(fs.join(tmp, SUCCESS), b"")

    def _write_manifest(self, folder: str, manifest: dict) -> None:
        fs.write_bytes(fs.join(folder, MANIFEST), encode_manifest(manifest))

    def manifest(self) -> dict | None:
        """The folder's `_manifest.json` (None for a folder written before manifests existed, or absent)."""
        return decode_manifest(self.file(MANIFEST))

    def write_file(self, name: str, data: bytes) -> None:
        """Write one file into the folder in place (atomically), without flagging the folder complete."""
        fs.write_bytes(self.file(name), data)

    def read_file(self, name: str) -> bytes:
        return fs.read_bytes(self.file(name))

    def mark_complete(self, manifest: dict | None = None) -> None:
        """Flag a folder written in place complete, its manifest (if any) written just before the flag."""
        if manifest is not None:
            self._write_manifest(self.uri, manifest)
        fs.write_bytes(self.file(SUCCESS), b"")

    def write_manifest(self, manifest: dict) -> None:
        """Give an existing folder a manifest (adopting a folder written before manifests existed)."""
        self._write_manifest(self.uri, manifest)

    def remove(self) -> bool:
        return fs.delete(self.uri)


class ParquetTarget(DirectoryTarget):
    """A parquet dataset folder, written by Spark (`spark_path`) or from pandas, read back as either."""

    # pyarrow's dataset and parquet modules load pandas: imported on use, so scheduling never pays for them.
    def write_pandas(self, frame, manifest: dict | None = None) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        with self.temporary_path(manifest) as tmp:
            filesystem, path = fs.resolve(tmp)
            filesystem.create_dir(path, recursive=True)
            pq.write_table(table, f"{path}/part-00000.parquet", filesystem=filesystem)

    def _write_manifest(self, folder: str, manifest: dict) -> None:
        if manifest.get("rows") is None:
            manifest = {**manifest, "rows": parquet_rows(folder)}
        super()._write_manifest(folder, manifest)

    def schema(self):
        """The dataset's columns and types (a pyarrow Schema), from the parquet footers (no data is read)."""
        import pyarrow.dataset as pads

        filesystem, path = fs.resolve(self.uri)
        with self._names_unreadable_file():
            return pads.dataset(path, filesystem=filesystem, format="parquet").schema

    def read_arrow(self, columns: list[str] | None = None):
        import pyarrow.dataset as pads

        filesystem, path = fs.resolve(self.uri)
        with self._names_unreadable_file():
            return pads.dataset(path, filesystem=filesystem, format="parquet").to_table(columns=columns)

    @contextmanager
    def _names_unreadable_file(self) -> Iterator[None]:
        """Turn pyarrow's error about a damaged part (truncated, not parquet) into CorruptTargetError naming it."""
        import pyarrow as pa

        try:
            yield
        except (pa.ArrowInvalid, OSError) as exc:
            bad = self.unreadable_file()
            if bad is None:
                raise
            raise CorruptTargetError(f"{bad[0]} is not a readable parquet file ({bad[1]})", bad[0]) from exc

    def unreadable_file(self) -> tuple[str, str] | None:
        """(uri, why) of the first data file whose parquet footer cannot be read, or None when all can."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        filesystem, path = fs.resolve(self.uri)
        for name in fs.data_files(self.uri):
            try:
                pq.read_metadata(f"{path}/{name}", filesystem=filesystem)
            except (pa.ArrowInvalid, OSError) as exc:
                return self.file(name), str(exc).replace(f"{path}/{name}", name)
        return None

    def read_pandas(self, columns: list[str] | None = None):
        return self.read_arrow(columns).to_pandas()


def parquet_rows(uri: str) -> int | None:
    """Rows of the parquet files of a folder, from their footers (no data is read); None if one is unreadable."""
    import pyarrow.parquet as pq

    filesystem, path = fs.resolve(uri)
    total = 0
    for name in fs.data_files(uri):
        try:
            with filesystem.open_input_file(f"{path}/{name}") as f:
                total += pq.read_metadata(f).num_rows
        except (OSError, ValueError):
            return None
    return total

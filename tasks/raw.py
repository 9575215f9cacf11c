"""Raw stage: upstream drops as ExternalTasks, complete when their `_SUCCESS` flag has landed, and their volumes."""
import codecs
import csv
import datetime as dt
import json
import sys

import luigi

from nightshift.dates import DAY
from nightshift.schema import CLIENTS_FILE, QUARANTINE_COUNTS
from targets import fs
from targets.directory import SUCCESS, DirectoryTarget
from tasks import config
from tasks.errors import ConfigurationError, SchemaError, VolumeError

_CHUNK = 1 << 20
_HEADER_BYTES = 1 << 16


class RawDrop(luigi.ExternalTask):
    """One upstream partition folder; a run that needs it while it is incomplete says so in one line."""

    date = luigi.DateParameter()
    kind = None  # the folder under raw/, set by each drop

    def output(self):
        return DirectoryTarget(config.raw_path(self.kind, self.date))


def describe_missing(uri: str) -> str:
    """Why a drop folder does not count as landed: absent, or present without its `_SUCCESS` flag."""
    try:
        if not fs.exists(uri):
            return "folder absent"
        files = [name for name in fs.list_dir(uri) if name != SUCCESS]
        return f"no {SUCCESS} flag yet ({len(files)} file(s) present)"
    except Exception as exc:  # an unreachable filesystem must still give the user the path
        return f"cannot be checked: {exc}"


@RawDrop.event_handler(luigi.Event.DEPENDENCY_MISSING)
def _report_missing(task: RawDrop) -> None:
    # Luigi's own summary names the task, not the path; an operator needs the path, once, without a traceback.
    uri = task.output().uri
    print(f"nightshift: missing raw partition {uri}: {describe_missing(uri)}", file=sys.stderr, flush=True)


class RawClients(RawDrop):
    """raw/clients/dt=D/clients.csv: the daily client snapshot."""

    kind = "clients"


class RawTransactions(RawDrop):
    """raw/transactions/dt=D/*.parquet: that day's card transactions."""

    kind = "transactions"


class RawLabels(RawDrop):
    """raw/labels/dt=S/labels.csv: observed defaults of the clients scored on S (lands ~30 days later)."""

    kind = "labels"


def _quarantine_of(kind: str, day: dt.date) -> str:
    # The client snapshot of day s feeds the scoring date s + 1, whose quarantine folder is named after the latter.
    return config.dataset_path(f"quarantine/{kind}", day + DAY if kind == "clients" else day)


def transaction_rows(uri: str) -> int:
    """Rows of a transactions partition from its parquet footers: one small read per file, no data."""
    import pyarrow.parquet as pq

    filesystem, path = fs.resolve(uri)
    return sum(pq.read_metadata(f"{path}/{name}", filesystem=filesystem).num_rows for name in fs.data_files(uri))


def csv_header(uri: str, encoding: str, expected: str, what: str, hint: str = "") -> tuple[str, list[str]]:
    """The first line of a CSV drop, decoded, without a UTF-8 byte order mark, and the column names it holds
    (stripped): the header Spark is then told, so it never reads the file to find the column names (through a
    Connect server it did so for every plan built on it).

    Reads at most the first 64 KiB through the filesystem layer, so it costs nothing at any file size. SchemaError
    names the file when the encoding is unknown, the file cannot be read (listing what its folder holds), is empty
    (`expected` says what should be there) or its first line is not text in `encoding` (then `hint` follows).
    """
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise SchemaError(f"{uri}: [raw] encoding = {encoding!r} is not a known encoding (e.g. utf-8, cp1251)") from None
    filesystem, path = fs.resolve(uri)
    try:
        with filesystem.open_input_stream(path) as stream:
            head = stream.read(_HEADER_BYTES)
    except (OSError, FileNotFoundError) as exc:
        found = fs.list_dir(fs.parent(uri))
        raise SchemaError(f"{uri}: cannot read {what} ({exc}); the partition holds {found}") from exc
    if not head.strip():
        raise SchemaError(f"{uri}: empty file ({len(head)} bytes); expected {expected}")
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        text = line.decode(encoding).lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise SchemaError(f"{uri}: the header is not valid {encoding} text ({exc.reason} at byte {exc.start}){hint}"
                          ) from None
    return text, [name.strip() for name in next(csv.reader([text]), [])]


def csv_rows(uri: str) -> int:
    """Data lines of a CSV file (lines after the header; a last line without newline counts), read in 1 MiB chunks.

    Reads the whole file once, on the driver; blank lines and quoted line breaks are counted as lines.
    """
    filesystem, path = fs.resolve(uri)
    lines, last = 0, b"\n"
    with filesystem.open_input_stream(path) as stream:
        while chunk := stream.read(_CHUNK):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return max(lines + (last != b"\n") - 1, 0)


def drop_rows(kind: str, day: dt.date) -> int | None:
    """Rows of the raw drop raw/{kind}/dt=day, as cheaply as they are known; None when the drop has not landed.

    The rows an earlier run recorded in the quarantine's `_counts.json` come first (one small read); otherwise a
    transactions day is counted from its parquet footers and a client snapshot by reading the file's lines once.
    An unreadable drop counts as absent: its own task says what is wrong with it.
    """
    quarantine = _quarantine_of(kind, day)
    if fs.is_file(fs.join(quarantine, SUCCESS)) and fs.is_file(fs.join(quarantine, QUARANTINE_COUNTS)):
        rows = json.loads(fs.read_bytes(fs.join(quarantine, QUARANTINE_COUNTS))).get("rows")
        if rows is not None:
            return int(rows)
    folder = config.raw_path(kind, day)
    if not fs.is_file(fs.join(folder, SUCCESS)):
        return None
    try:
        return transaction_rows(folder) if kind == "transactions" else csv_rows(fs.join(folder, CLIENTS_FILE))
    except (OSError, ValueError):  # pyarrow's ArrowInvalid is a ValueError
        return None


def volume_settings() -> config.validate:
    """`[validate]`'s volume keys, checked: a bad value is a ConfigurationError naming it."""
    cfg = config.validate()
    if cfg.volume_window_days < 1:
        raise ConfigurationError(f"[validate] volume_window_days = {cfg.volume_window_days}: must be at least 1")
    for key in ("min_volume_ratio", "max_volume_ratio", "min_snapshot_ratio"):
        if not getattr(cfg, key) >= 0:
            raise ConfigurationError(f"[validate] {key} = {getattr(cfg, key)}: must be 0 (off) or positive")
    if 0 < cfg.max_volume_ratio < cfg.min_volume_ratio:
        raise ConfigurationError(f"[validate] max_volume_ratio = {cfg.max_volume_ratio} is below min_volume_ratio = "
                                 f"{cfg.min_volume_ratio}: every drop would fail")
    return cfg


def drop_volume(kind: str, day: dt.date, rows: int | None = None) -> dict:
    """The volume check of raw/{kind}/dt=day: its rows (counted with drop_rows unless given) against the median of
    the same kind of drop over the previous `[validate] volume_window_days` days; see nightshift.checks.check_volume.
    """
    from nightshift import checks

    cfg = volume_settings()
    rows = drop_rows(kind, day) if rows is None else rows
    if rows is None:
        return {"drop": config.raw_path(kind, day), "name": "volume", "measured": None, "verdict": "skip",
                "detail": "the drop has not landed or cannot be read"}
    earlier = (drop_rows(kind, day - k * DAY) for k in range(1, cfg.volume_window_days + 1))
    history = [n for n in earlier if n is not None]
    low = "min_snapshot_ratio" if kind == RawClients.kind else "min_volume_ratio"
    result = checks.check_volume(rows, history, getattr(cfg, low), cfg.max_volume_ratio, low)
    return {"drop": config.raw_path(kind, day), **result}


def check_drop_volume(kind: str, day: dt.date, rows: int, source: str) -> dict:
    """Fail with VolumeError (file, rows, median, setting) when the drop's volume is out of bounds; else its check."""
    from nightshift import checks

    result = drop_volume(kind, day, rows)
    if result["verdict"] == "fail":
        raise VolumeError(checks.describe_volume(source, result, config.validate().volume_window_days))
    return result

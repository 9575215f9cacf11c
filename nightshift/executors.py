"""What Spark runs on executors: module-level batch functions, bound with functools.partial by the tasks.

A worker unpickles a reference to these functions and imports this module, which needs only the core
(pandas, scikit-learn): never luigi, the tasks or a Spark session. scikit-learn is imported by the scoring
function alone, so the driver binding it never pays that import.
"""
import functools
import operator
from typing import Callable, Iterable, Iterator

import pandas as pd

from nightshift.schema import FEATURE_FILE_ROWS, KEY, SCORE_BATCH_ROWS


class Payload:
    """Bytes handed to executors inside the pickled function, with a broadcast's `.value`."""

    def __init__(self, value: bytes):
        self.value = value


# The model a reused Python worker has already unpickled, keyed by its sha256: one load per worker, not per batch.
_models: dict[str, object] = {}


def _model(model_blob, digest: str):
    """The model in `model_blob.value` (a Spark broadcast, or a Payload), its bytes checked against `digest` before
    unpickling, once per worker process."""
    from nightshift import modeling

    model = _models.get(digest)
    if model is None:
        model = _models[digest] = modeling.load_model(model_blob.value, digest, "broadcast model")
    return model


def _scored(batch: pd.DataFrame, model, features: list[str], version: str) -> pd.DataFrame:
    from nightshift import modeling

    return pd.DataFrame({KEY: batch[KEY], "score": modeling.score(model, batch, features), "model_version": version})


def score_batches(
    batches: Iterable[pd.DataFrame], *, model_blob, digest: str, features: list[str], version: str,
) -> Iterator[pd.DataFrame]:
    """Score feature rows batch by batch, as Spark hands them over: client_id, score, model_version."""
    model = _model(model_blob, digest)
    for batch in batches:
        yield _scored(batch, model, features, version)


def score_files(
    indexes: Iterable[pd.DataFrame], *, model_blob, digest: str, features: list[str], version: str, filesystem,
    paths: list[str],
) -> Iterator[pd.DataFrame]:
    """Score whole parquet files of feature rows, which the worker reads itself: client_id, score, model_version.

    `indexes` are batches of an `id` column (spark.range), each id the position of a file in `paths`, which are
    paths on `filesystem` (a pyarrow FileSystem). A file is read SCORE_BATCH_ROWS rows at a time, so the feature
    rows never pass through the JVM, and a worker holds one batch of them at a time.
    """
    import pyarrow.parquet as pq

    model = _model(model_blob, digest)
    for frame in indexes:
        for index in frame["id"]:
            with filesystem.open_input_file(paths[index]) as source:
                for batch in pq.ParquetFile(source).iter_batches(SCORE_BATCH_ROWS, columns=[KEY, *features]):
                    yield _scored(batch.to_pandas(), model, features, version)


def clean_client_files(
    indexes: Iterable[pd.DataFrame], *, filesystem, paths: list[str], headers: list[list[str]], bounds: dict,
    valid_folders: list[str], rejected_folders: list[str],
) -> Iterator[pd.DataFrame]:
    """Clean whole client snapshots, which the worker reads itself: `id`, and `rows`, the rows of the file read, or
    -1 for a file that is not plain CSV (cleaning.read_plain_csv), left to Spark's reader.

    `indexes` are batches of an `id` column (spark.range), each id the position of a file in `paths` (paths on
    `filesystem`, a pyarrow FileSystem) and `headers` (its header's names). A file's valid and rejected rows
    (cleaning.clean_snapshot) go to one parquet file in its folder of `valid_folders` and `rejected_folders`.
    """
    import pyarrow.parquet as pq

    from nightshift import cleaning

    def clean(index: int) -> int:
        with filesystem.open_input_file(paths[index]) as source:
            raw = cleaning.read_plain_csv(source.read(), headers[index])
        if raw is None:
            return -1
        valid, rejected = cleaning.clean_snapshot(raw, **bounds)
        for table, folder in ((valid, valid_folders[index]), (rejected, rejected_folders[index])):
            filesystem.create_dir(folder, recursive=True)
            pq.write_table(table, f"{folder}/part-00000.parquet", filesystem=filesystem)
        return raw.num_rows

    return each_index(indexes, clean)


def window_feature_files(
    indexes: Iterable[pd.DataFrame], *, filesystem, days: list[tuple[int, str]], windows: list[int],
    bounds: list[tuple[int | None, int | None]], out: str,
) -> Iterator[pd.DataFrame]:
    """Sum the transaction windows of one range of clients per index, reading the per-day aggregates and writing the
    result itself: `id`, and `rows`, the clients written.

    `indexes` are batches of an `id` column (spark.range), each id the position of a client range in `bounds`
    ([low, high), None for no bound). The worker reads that range's rows of every day in `days` (age, parquet
    folder on `filesystem`, a pyarrow FileSystem; windows.window_features), which skips the row groups outside it
    when a day's rows are sorted by client, and writes them to `out`/part-<id>.parquet.
    """
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    from nightshift import windows as maths
    from nightshift.schema import DAILY_AGGREGATES

    def window(index: int) -> int:
        where = client_range(*bounds[index])
        table = maths.window_features(
            [(age, pads.dataset(folder, filesystem=filesystem, format="parquet")
              .to_table(columns=[KEY, *DAILY_AGGREGATES], filter=where)) for age, folder in days], windows)
        filesystem.create_dir(out, recursive=True)
        pq.write_table(table, f"{out}/part-{index:05d}.parquet", filesystem=filesystem)
        return table.num_rows

    return each_index(indexes, window)


def join_feature_files(
    indexes: Iterable[pd.DataFrame], *, filesystem, clients: str, transactions: str, out: str, zeros: list[str],
    bounds: list[tuple[int | None, int | None]],
) -> Iterator[pd.DataFrame]:
    """Join one range of clients of a scoring date's feature table per index, reading and writing it itself: `id`,
    and `rows`, the rows written.

    Every row of the client features (parquet folder `clients`) whose client_id is in the range `bounds`[id]
    ([low, high), None for no bound) with its client's row of the transaction features (`transactions`), the `zeros`
    columns 0.0 (and not nullable) for a client without one; written to the folder `out` (paths on `filesystem`, a
    pyarrow FileSystem) in files of at most FEATURE_FILE_ROWS rows.
    """
    import pyarrow.compute as pc
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    def join(index: int) -> int:
        where = client_range(*bounds[index])
        left, right = (pads.dataset(folder, filesystem=filesystem, format="parquet").to_table(filter=where)
                       for folder in (clients, transactions))
        table = left.join(right, KEY, join_type="left outer")
        table = table.select([*left.column_names, *(name for name in right.column_names if name != KEY)])
        for name in zeros:  # filled, so never null: the schema says so, as Spark's fillna does
            column = table.schema.get_field_index(name)
            table = table.set_column(column, table.field(column).with_nullable(False), pc.fill_null(table[name], 0.0))
        filesystem.create_dir(out, recursive=True)
        files = max(1, -(-table.num_rows // FEATURE_FILE_ROWS))
        step = -(-table.num_rows // files) if table.num_rows else 1
        for k in range(files):
            pq.write_table(table.slice(k * step, step), f"{out}/part-{index:05d}-{k:05d}.parquet",
                           filesystem=filesystem)
        return table.num_rows

    return each_index(indexes, join)


def each_index(indexes: Iterable[pd.DataFrame], work: Callable[[int], int]) -> Iterator[pd.DataFrame]:
    """`id` and `rows` = work(id) for every id of the batches of `indexes` (spark.range): one piece of work per
    Spark task, which the worker reads and writes itself."""
    for frame in indexes:
        yield pd.DataFrame({"id": frame["id"], "rows": [work(int(index)) for index in frame["id"]]})


def client_range(low: int | None, high: int | None):
    """The pyarrow filter of the client ids in [low, high) (None: no bound), or None for every client."""
    import pyarrow.dataset as pads

    inside = [pads.field(KEY) >= low] if low is not None else []
    if high is not None:
        inside.append(pads.field(KEY) < high)
    return functools.reduce(operator.and_, inside) if inside else None

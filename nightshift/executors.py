"""What Spark runs on executors: module-level batch functions, bound with functools.partial by the tasks.

A worker unpickles a reference to these functions and imports this module, which needs only the core
(numpy, pandas, scikit-learn): never luigi, the tasks or a Spark session. scikit-learn is imported by the
scoring function alone: it takes several times as long to import as pandas, and a worker that only cleans
client rows (or the driver binding the cleaning function) never needs it.
"""
from typing import Iterable, Iterator

import numpy as np
import pandas as pd

from nightshift import cleaning
from nightshift.schema import CLIENT_COLUMNS, CORRUPT_RECORD, KEY


class Payload:
    """Bytes handed to executors inside the pickled function, with a broadcast's `.value`."""

    def __init__(self, value: bytes):
        self.value = value


# The model a reused Python worker has already unpickled, keyed by its sha256: one load per worker, not per batch.
_models: dict[str, object] = {}


def clean_client_batches(
    batches: Iterable[pd.DataFrame], *, salary_min: float, salary_max: float, age_min: int, age_max: int,
    encoding: str,
) -> Iterator[pd.DataFrame]:
    """Parse raw client rows batch by batch: typed columns, `reason` for a rejected row, the raw values kept.

    A row that is not readable text (undecodable bytes, UTF-8 read under another encoding, a wrong field
    count) is rejected for that, whatever its columns parse to; `raw_line` keeps such a line whole.
    """
    bounds = dict(salary_min=salary_min, salary_max=salary_max, age_min=age_min, age_max=age_max)
    for batch in batches:
        values = batch[list(CLIENT_COLUMNS)]
        cleaned = cleaning.clean_clients(values, **bounds)
        unreadable = cleaning.explain_unreadable(values, batch[CORRUPT_RECORD], encoding)
        override = np.array([r is not None for r in unreadable], dtype=bool)
        cleaned["reason"] = np.where(override, unreadable, cleaned["reason"].to_numpy(dtype=object))
        cleaned["raw_line"] = batch[CORRUPT_RECORD].astype(object).where(batch[CORRUPT_RECORD].notna(), None)
        yield cleaned


def score_batches(
    batches: Iterable[pd.DataFrame], *, model_blob, digest: str, features: list[str], version: str,
) -> Iterator[pd.DataFrame]:
    """Score feature rows batch by batch: client_id, score, model_version.

    `model_blob` is anything with a `.value` holding the model file's bytes (a Spark broadcast); the
    bytes are checked against `digest` before unpickling, once per worker process.
    """
    from nightshift import modeling

    model = _models.get(digest)
    if model is None:
        model = _models[digest] = modeling.load_model(model_blob.value, digest, "broadcast model")
    for batch in batches:
        yield pd.DataFrame({KEY: batch[KEY], "score": modeling.score(model, batch, features), "model_version": version})

"""What Spark runs on executors: module-level batch functions, bound with functools.partial by the tasks.

A worker unpickles a reference to these functions and imports this module, which needs only the core
(pandas, scikit-learn): never luigi, the tasks or a Spark session. scikit-learn is imported by the scoring
function alone, so the driver binding it never pays that import.
"""
from typing import Iterable, Iterator

import pandas as pd

from nightshift.schema import KEY


class Payload:
    """Bytes handed to executors inside the pickled function, with a broadcast's `.value`."""

    def __init__(self, value: bytes):
        self.value = value


# The model a reused Python worker has already unpickled, keyed by its sha256: one load per worker, not per batch.
_models: dict[str, object] = {}


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

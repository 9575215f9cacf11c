"""Model maths: the scikit-learn pipeline, its training and scoring. No luigi, no Spark."""
import hashlib
import pickle

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from tasks.errors import FeatureMismatch, ModelIntegrityError

LABEL = "defaulted"
KEY = "client_id"


def build_model(features: list[str], seed: int) -> Pipeline:
    """Log-scaled, standardised features into a logistic regression (probabilities calibrated by design).

    Money and count features are heavy-tailed, so they go through log1p; a missing salary is imputed
    with the median and flagged by an indicator column.
    """
    log_scaled = [f for f in features if f not in ("is_male", "age")]
    prep = ColumnTransformer(
        [
            ("log", make_pipeline(SimpleImputer(strategy="median", add_indicator=True),
                                  FunctionTransformer(_signed_log1p)), log_scaled),
            ("plain", SimpleImputer(strategy="median"), [f for f in features if f in ("is_male", "age")]),
        ]
    )
    return Pipeline([("prep", prep), ("scale", StandardScaler()),
                     ("clf", LogisticRegression(max_iter=2000, random_state=seed))])


def _signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def fit_model(train: pd.DataFrame, features: list[str], seed: int) -> Pipeline:
    """Fit the pipeline on labelled rows."""
    model = build_model(features, seed)
    model.fit(train[features], train[LABEL].astype(int))
    return model


def score(model: Pipeline, frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """Probability of default for each row."""
    return model.predict_proba(frame[features])[:, 1]


def dump_model(model: Pipeline) -> bytes:
    return pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)


def sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def load_model(blob: bytes, expected_sha256: str, source: str) -> Pipeline:
    """Unpickle only bytes whose sha256 matches the metadata written with them."""
    actual = sha256(blob)
    if actual != expected_sha256:
        raise ModelIntegrityError(
            f"{source}: sha256 {actual[:12]}... does not match metadata.json's {expected_sha256[:12]}... "
            f"({len(blob)} bytes); the model file was changed or truncated, refusing to load it"
        )
    return pickle.loads(blob)


def check_features(expected: dict[str, str], actual: dict[str, str], source: str) -> None:
    """Refuse a feature table whose columns or dtypes differ from the model's."""
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    retyped = sorted(f"{name}: model {expected[name]}, table {actual[name]}"
                     for name in set(expected) & set(actual) if expected[name] != actual[name])
    if missing or extra or retyped:
        raise FeatureMismatch(
            f"{source}: features differ from the model's: missing {missing}, unexpected {extra}, "
            f"dtype changed {retyped}"
        )

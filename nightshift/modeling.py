"""Model maths: the scikit-learn pipeline, its training, evaluation and safe (de)serialisation. No luigi, no Spark.

scikit-learn is imported where a model is built or unpickled, never at module import: the driver only checks a
model file (digest, library versions, the modules it references) before the executors load it.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import importlib.util
import pickle
import pickletools
import sys
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from nightshift import metrics
from nightshift.errors import FeatureMismatch, ModelIntegrityError
from nightshift.schema import KEY, LABEL, SNAPSHOT

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

SALARY = "salary_rub_month"
PLAIN = ("is_male",)
RATIO_CAP = 10.0


def derived_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Ratios a credit analyst reads: spend over salary and risky share of spend, for every window present.

    `spend_Nd / salary` is left missing when the salary is, so the imputer's indicator keeps that
    signal; the risky share is 0 for a client without spend.
    """
    out = frame.copy()
    salary = frame[SALARY].astype(float) if SALARY in frame else None
    for column in frame.columns:
        if column.startswith("spend_") and salary is not None:
            out[f"{column}_to_salary"] = np.minimum(frame[column].astype(float) / salary, RATIO_CAP)
        if column.startswith("risky_spend_"):
            spend = frame[column.replace("risky_", "", 1)].astype(float)
            out[f"{column}_share"] = np.where(spend > 0, frame[column].astype(float) / spend.where(spend > 0, 1.0), 0.0)
    return out


def _signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def build_model(features: list[str], seed: int, kind: str = "logistic") -> Pipeline:
    """Derived ratios, then log-scaled money/count columns, a spline of age, into a calibrated classifier.

    Money and count features are heavy-tailed, so they go through a signed log1p; a missing value
    (salary left empty) is imputed with the median and flagged by an indicator column. Age enters as
    a spline because risk is not linear in it. `logistic` (the default, chosen by measurement) is
    calibrated by construction; `boosting` is kept for comparison.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, SplineTransformer, StandardScaler

    derived = list(derived_features(pd.DataFrame(columns=features)).columns)
    shares = [f for f in derived if f.endswith("_share")]
    logged = [f for f in derived if f not in (*PLAIN, "age", *shares)]
    prep = ColumnTransformer(
        [
            ("log", make_pipeline(SimpleImputer(strategy="median", add_indicator=True),
                                  FunctionTransformer(_signed_log1p)), logged),
            ("age", make_pipeline(SimpleImputer(strategy="median"), SplineTransformer(n_knots=5, degree=3)),
             [f for f in derived if f == "age"]),
            ("plain", SimpleImputer(strategy="median"), [f for f in derived if f in PLAIN or f in shares]),
        ]
    )
    if kind == "logistic":
        clf = LogisticRegression(C=1.0, max_iter=5000, random_state=seed)
    elif kind == "boosting":
        clf = HistGradientBoostingClassifier(learning_rate=0.05, max_iter=300, max_leaf_nodes=15,
                                             min_samples_leaf=100, l2_regularization=1.0,
                                             early_stopping=True, random_state=seed)
    else:
        raise ValueError(f"unknown model kind {kind!r}: logistic or boosting")
    return Pipeline([("derive", FunctionTransformer(derived_features)), ("prep", prep),
                     ("scale", StandardScaler()), ("clf", clf)])


def fit_model(train: pd.DataFrame, features: list[str], seed: int, kind: str = "logistic") -> Pipeline:
    """Fit the pipeline on labelled rows."""
    model = build_model(features, seed, kind)
    model.fit(train[features], train[LABEL].astype(int))
    return model


def score(model: Pipeline, frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """Probability of default for each row."""
    return model.predict_proba(frame[features])[:, 1]


def split_holdout(data: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Out-of-time split: the newest snapshot is the holdout, the older ones train."""
    newest = data[SNAPSHOT].max()
    return data[data[SNAPSHOT] < newest], data[data[SNAPSHOT] == newest]


def train_and_evaluate(data: pd.DataFrame, features: list[str], seed: int,
                       truth: pd.DataFrame | None = None, kind: str = "logistic") -> tuple[Pipeline, dict]:
    """Fit on the older snapshots, measure on the newest; the metadata figures that go with the model.

    The report holds row counts, class balance, holdout AUC and Brier, the reference score histogram
    (quantile edges of the holdout scores, kept fixed for the model's life), a reference histogram of
    every input feature over the whole training set (what feature drift is measured against) and,
    when the generator's `truth` (client_id, p_default) of the holdout snapshot is given, the oracle's
    AUC and Brier on the same holdout rows.
    """
    train, holdout = split_holdout(data)
    if train.empty or train[LABEL].nunique() < 2 or holdout[LABEL].nunique() < 2:
        raise ValueError(f"training needs both classes in train ({len(train)} rows) and holdout "
                         f"({len(holdout)} rows)")
    model = fit_model(train, features, seed, kind)
    scores = score(model, holdout, features)
    quality = metrics.quality(holdout[LABEL].to_numpy(), scores)
    edges = metrics.quantile_edges(scores)
    report = {
        "estimator": kind,
        "features": list(features),
        "training_snapshots": sorted(data[SNAPSHOT].unique().tolist()),
        "holdout_snapshot": holdout[SNAPSHOT].iloc[0],
        "rows": {"train": int(len(train)), "holdout": int(len(holdout))},
        "positives": {"train": int(train[LABEL].sum()), "holdout": int(holdout[LABEL].sum())},
        "default_rate": {"train": float(train[LABEL].mean()), "holdout": float(holdout[LABEL].mean())},
        "holdout_auc": quality["auc"],
        "brier": quality["brier"],
        "mean_score": {"holdout": float(scores.mean())},
        "reference_histogram": {"edges": edges, "counts": metrics.histogram(scores, edges)},
        "feature_reference": {name: metrics.feature_reference(data[name].to_numpy(dtype=float, na_value=np.nan))
                              for name in features},
    }
    if truth is not None:
        report.update(oracle_quality(holdout, truth))
    return model, report


def oracle_quality(holdout: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """AUC and Brier of the true probabilities on the holdout rows that have a truth row."""
    joined = holdout[[KEY, LABEL]].merge(truth[[KEY, "p_default"]], on=KEY, how="inner")
    if joined.empty or joined[LABEL].nunique() < 2:
        return {}
    oracle = metrics.quality(joined[LABEL].to_numpy(), joined["p_default"].to_numpy())
    return {"oracle_auc": oracle["auc"], "oracle_brier": oracle["brier"], "oracle_rows": int(len(joined))}


def model_version(model_day: dt.date, digest: str) -> str:
    """What every prediction row carries: the model date and the first 8 hex digits of the model file's sha256."""
    return f"{model_day.isoformat()}-{digest[:8]}"


def dump_model(model: Pipeline) -> bytes:
    return pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)


def sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def _major_minor(version: str) -> str:
    return ".".join(str(version).split(".")[:2])


def installed_versions() -> dict[str, str]:
    """The versions of the libraries a pickled model depends on, as a model's metadata records them."""
    return {"scikit-learn": importlib.metadata.version("scikit-learn"), "numpy": np.__version__}


def check_versions(recorded: dict[str, str] | None, source: str) -> None:
    """Refuse a model pickled under another scikit-learn or numpy major.minor than the installed one.

    Unpickling across such versions may fail, or worse, load and score differently without a word.
    """
    installed = installed_versions()
    for name, version in (recorded or {}).items():
        if name in installed and _major_minor(version) != _major_minor(installed[name]):
            raise ModelIntegrityError(
                f"{source}: the model was written with {name} {version}, {installed[name]} is installed; "
                f"retrain it (bin/invalidate TrainModel --date <model date> --downstream, then rerun) "
                f"or pin {name}=={_major_minor(version)}.* in the environment"
            )


def referenced_modules(blob: bytes) -> set[str]:
    """The modules a pickle's classes and functions come from, read from its opcodes without unpickling it.

    Protocol 4+ names a global by pushing its module and name as strings (directly or from the memo), then
    STACK_GLOBAL; older protocols put both in the GLOBAL opcode's argument.
    """
    modules, strings, memo, top = set(), [], {}, None
    for op, arg, _ in pickletools.genops(blob):
        name = op.name
        if name in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
            memo[len(memo) if name == "MEMOIZE" else arg] = top
            continue
        top = None
        if name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
            top = arg
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            top = memo.get(arg)
        elif name == "STACK_GLOBAL" and len(strings) >= 2:
            modules.add(strings[-2])
        elif name in ("GLOBAL", "INST"):
            modules.add(arg.split(" ")[0])
        if isinstance(top, str):
            strings.append(top)
    return modules


def _importable(module: str) -> bool:
    """Whether `module` can be imported here, without importing any package not already loaded (finding
    `sklearn.pipeline` would import scikit-learn): a module of an unloaded package is checked by its package."""
    top = module.split(".")[0]
    name = module if top in sys.modules or top == "nightshift" else top
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def verify_model(blob: bytes, expected_sha256: str, source: str, versions: dict[str, str] | None = None) -> None:
    """What `load_model` checks, without unpickling (so without importing scikit-learn): the sha256 against the
    metadata, the library versions, and that every module the pickle references exists here."""
    _check_digest(blob, expected_sha256, source)
    check_versions(versions, source)
    missing = sorted(module for module in referenced_modules(blob) if not _importable(module))
    if missing:
        raise _missing_module(source, missing[0])


def _missing_module(source: str, module: str) -> ModelIntegrityError:
    # Models pickled before the core package existed reference tasks.modeling.
    return ModelIntegrityError(
        f"{source}: the model references module {module!r}, which nightshift no longer has; retrain it "
        f"(bin/invalidate TrainModel --date <model date> --downstream, then rerun)"
    )


def _check_digest(blob: bytes, expected_sha256: str, source: str) -> None:
    actual = sha256(blob)
    if actual != expected_sha256:
        raise ModelIntegrityError(
            f"{source}: sha256 {actual[:12]}... does not match metadata.json's {str(expected_sha256)[:12]}... "
            f"({len(blob)} bytes); the model file was changed or truncated, refusing to load it"
        )


def load_model(blob: bytes, expected_sha256: str, source: str, versions: dict[str, str] | None = None) -> Pipeline:
    """Unpickle only bytes whose sha256 matches the metadata written with them, under compatible libraries."""
    _check_digest(blob, expected_sha256, source)
    check_versions(versions, source)
    try:
        return pickle.loads(blob)
    except ModuleNotFoundError as exc:
        raise _missing_module(source, exc.name) from None


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

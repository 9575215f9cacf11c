"""The model's maths without Spark: a calibrated pipeline, its report, safe loading and the feature check."""
import datetime as dt
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from nightshift import modeling
from nightshift.errors import FeatureMismatch, ModelIntegrityError

FEATURES = ["is_male", "age", "salary_rub_month", "spend_7d", "risky_spend_7d", "tx_count_7d"]


def frame(n: int, seed: int, snapshot: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    salary = rng.lognormal(np.log(55_000), 0.5, n)
    spend = rng.lognormal(np.log(20_000), 1.0, n) * (rng.random(n) < 0.8)
    risky = spend * rng.random(n) * (rng.random(n) < 0.3)
    out = pd.DataFrame({"client_id": np.arange(n, dtype="int64"), "is_male": rng.integers(0, 2, n).astype("int32"),
                        "age": rng.integers(18, 80, n).astype("int32"), "salary_rub_month": salary,
                        "spend_7d": spend, "risky_spend_7d": risky, "tx_count_7d": rng.poisson(3, n).astype(float)})
    logit = -2.5 - 0.8 * np.log(salary / 55_000) + 1.5 * np.where(spend > 0, risky / np.maximum(spend, 1), 0)
    out["defaulted"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int32")
    out.loc[rng.random(n) < 0.03, "salary_rub_month"] = np.nan  # an empty salary is valid
    return out.assign(snapshot=snapshot)


@pytest.fixture(scope="module")
def trained():
    data = pd.concat([frame(3000, 1, "2026-01-01"), frame(3000, 2, "2026-01-08")], ignore_index=True)
    truth = data[data.snapshot == "2026-01-08"][["client_id"]].assign(p_default=0.1)
    return data, *modeling.train_and_evaluate(data, FEATURES, seed=42, truth=truth)


def test_training_reports_holdout_quality_balance_and_a_fixed_reference_histogram(trained):
    data, model, report = trained
    assert report["training_snapshots"] == ["2026-01-01", "2026-01-08"]
    assert report["holdout_snapshot"] == "2026-01-08"
    assert report["rows"] == {"train": 3000, "holdout": 3000}
    assert 0.5 < report["holdout_auc"] <= 1 and 0 < report["brier"] < 0.25
    assert report["oracle_auc"] == pytest.approx(0.5) and report["oracle_rows"] == 3000
    edges, counts = report["reference_histogram"]["edges"], report["reference_histogram"]["counts"]
    assert edges[0] == 0.0 and edges[-1] == 1.0 and edges == sorted(edges) and sum(counts) == 3000
    assert abs(report["mean_score"]["holdout"] - report["default_rate"]["holdout"]) < 0.02


def test_the_same_seed_and_data_give_the_same_scores(trained):
    data, model, _ = trained
    again, _ = modeling.train_and_evaluate(data, FEATURES, seed=42)
    holdout = data[data.snapshot == "2026-01-08"]
    np.testing.assert_array_equal(modeling.score(model, holdout, FEATURES), modeling.score(again, holdout, FEATURES))


def test_training_without_both_classes_is_refused():
    data = pd.concat([frame(200, 1, "2026-01-01"), frame(200, 2, "2026-01-08")]).assign(defaulted=0)
    with pytest.raises(ValueError, match="both classes"):
        modeling.train_and_evaluate(data, FEATURES, seed=1)


def test_a_verified_model_loads_and_a_changed_or_truncated_one_is_refused(trained):
    data, model, _ = trained
    blob = modeling.dump_model(model)
    digest = modeling.sha256(blob)
    loaded = modeling.load_model(blob, digest, "models/x/model.pkl")
    holdout = data.head(50)
    np.testing.assert_array_equal(modeling.score(loaded, holdout, FEATURES), modeling.score(model, holdout, FEATURES))
    modeling.verify_model(blob, digest, "models/x/model.pkl")
    flipped = blob[:100] + bytes([blob[100] ^ 1]) + blob[101:]
    for check in (modeling.load_model, modeling.verify_model):
        for bad in (blob[: len(blob) // 2], flipped, b""):
            with pytest.raises(ModelIntegrityError, match="models/x/model.pkl: sha256 .* refusing to load"):
                check(bad, digest, "models/x/model.pkl")


def test_feature_check_names_missing_unexpected_and_retyped_columns():
    model = {"age": "int32", "salary_rub_month": "float64", "spend_7d": "float64"}
    modeling.check_features(model, dict(model), "features/table/date=D")
    table = {"age": "float64", "salary_rub_month": "float64", "spend_30d": "float64"}
    with pytest.raises(FeatureMismatch) as err:
        modeling.check_features(model, table, "features/table/date=D")
    message = str(err.value)
    assert "features/table/date=D" in message
    assert "missing ['spend_7d']" in message and "unexpected ['spend_30d']" in message
    assert "age: model int32, table float64" in message


def test_model_version_is_the_model_date_and_a_short_hash():
    assert modeling.model_version(dt.date(2026, 3, 2), "bf6ee38a60ab47") == "2026-03-02-bf6ee38a"


def test_derived_ratios_keep_a_missing_salary_missing_and_share_zero_without_spend():
    rows = pd.DataFrame({"salary_rub_month": [50_000.0, np.nan, 10_000.0], "spend_7d": [25_000.0, 100.0, 0.0],
                         "risky_spend_7d": [5_000.0, 0.0, 0.0]})
    out = modeling.derived_features(rows)
    assert out["spend_7d_to_salary"].iloc[0] == 0.5 and np.isnan(out["spend_7d_to_salary"].iloc[1])
    assert out["risky_spend_7d_share"].tolist() == [0.2, 0.0, 0.0]


def test_a_model_file_loads_where_neither_tasks_nor_luigi_can_be_imported(trained, tmp_path):
    _, model, _ = trained
    blob = modeling.dump_model(model)
    (tmp_path / "model.pkl").write_bytes(blob)
    holdout = frame(50, 3, "2026-01-15")
    holdout.to_parquet(tmp_path / "rows.parquet")
    expected = modeling.score(model, holdout, FEATURES)
    script = f"""
import sys
sys.modules["tasks"] = sys.modules["luigi"] = sys.modules["targets"] = None  # any import of them fails
import pandas as pd
from nightshift import modeling
blob = open({str(tmp_path / "model.pkl")!r}, "rb").read()
model = modeling.load_model(blob, modeling.sha256(blob), "model.pkl", modeling.installed_versions())
scores = modeling.score(model, pd.read_parquet({str(tmp_path / "rows.parquet")!r}), {FEATURES!r})
print(",".join(repr(float(s)) for s in scores))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    np.testing.assert_array_equal(np.array([float(s) for s in out.split(",")]), expected)
    assert b"tasks." not in blob and b"nightshift.modeling" in blob


def test_a_model_written_by_another_scikit_learn_minor_version_is_refused_naming_both(trained):
    _, model, _ = trained
    blob = modeling.dump_model(model)
    installed = modeling.installed_versions()
    major, minor = installed["scikit-learn"].split(".")[:2]
    recorded = {**installed, "scikit-learn": f"{major}.{int(minor) + 1}.0"}
    for check in (modeling.load_model, modeling.verify_model):
        with pytest.raises(ModelIntegrityError, match=rf"scikit-learn {major}\.{int(minor) + 1}\.0, "
                                                      rf"{re.escape(installed['scikit-learn'])} is installed.*retrain"):
            check(blob, modeling.sha256(blob), "models/2026-01-05/model.pkl", recorded)
    patch_only = {**installed, "scikit-learn": f"{major}.{minor}.999"}
    assert modeling.load_model(blob, modeling.sha256(blob), "model.pkl", patch_only) is not None
    modeling.verify_model(blob, modeling.sha256(blob), "model.pkl", patch_only)


def test_a_model_pickled_before_the_core_package_existed_is_refused_with_the_fix():
    # A pickle naming a module that is gone, as one from before the move to nightshift/ names tasks.modeling.
    blob = b"\x80\x04\x95#\x00\x00\x00\x00\x00\x00\x00\x8c\x0etasks.modeling\x94\x8c\x10derived_features\x94\x93\x94."
    for check in (modeling.load_model, modeling.verify_model):
        with pytest.raises(ModelIntegrityError, match=r"module 'tasks(\.modeling)?'.*retrain"):
            check(blob, modeling.sha256(blob), "models/2026-01-05/model.pkl")


def test_a_model_is_verified_without_importing_scikit_learn(trained, tmp_path):
    # The driver checks the model file before the executors unpickle it; importing scikit-learn there costs a second.
    _, model, _ = trained
    blob = modeling.dump_model(model)
    path = tmp_path / "model.pkl"
    path.write_bytes(blob)
    code = ("import sys; from nightshift import modeling; blob = open(sys.argv[1], 'rb').read(); "
            "modeling.verify_model(blob, modeling.sha256(blob), 'model.pkl', modeling.installed_versions()); "
            "print(sorted(m for m in ('sklearn', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert {"sklearn.pipeline", "sklearn.linear_model._logistic", "nightshift.modeling"} <= modeling.referenced_modules(blob)

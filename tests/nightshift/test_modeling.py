"""The model's maths without Spark: a calibrated pipeline, its report, safe loading and the feature check."""
import datetime as dt

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
    flipped = blob[:100] + bytes([blob[100] ^ 1]) + blob[101:]
    for bad in (blob[: len(blob) // 2], flipped, b""):
        with pytest.raises(ModelIntegrityError, match="models/x/model.pkl: sha256 .* refusing to load"):
            modeling.load_model(bad, digest, "models/x/model.pkl")


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

"""The benchmark's baseline computes nightshift's features and scores, and its result table formats."""
import importlib.util
import json
import sqlite3

import numpy as np
import pandas as pd
from tests.conftest import REPO, SCORE_DATE


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


baseline = _load("baseline_pandas")
run = _load("run")


def test_baseline_features_equal_nightshift_feature_table(scored_root):
    # the test config has 7-day windows only
    ours = baseline.feature_table(str(scored_root), SCORE_DATE, windows=(7,))
    theirs = pd.read_parquet(scored_root / "features" / "table" / f"date={SCORE_DATE}")
    assert sorted(ours.columns) == sorted(theirs.columns)
    ours = ours.sort_values("client_id").reset_index(drop=True)
    theirs = theirs[ours.columns].sort_values("client_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, theirs, check_dtype=False, check_exact=False, rtol=1e-12)


def test_baseline_scores_and_publishes_what_nightshift_published(scored_root, tmp_path):
    model_dir = next((scored_root / "models").iterdir())
    scores = tmp_path / "scores.parquet"
    db = tmp_path / "baseline.db"
    argv = ["--root", str(scored_root), "--date", SCORE_DATE.isoformat(), "--model-dir", str(model_dir),
            "--db", str(db), "--scores-out", str(scores), "--windows", "7"]
    assert baseline.main(argv) == 0
    check = run.cross_check(str(scored_root), SCORE_DATE, str(scores))
    assert check["match"], check
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == check["rows_nightshift"]


def test_transaction_features_windows_on_a_tiny_frame():
    tx = pd.DataFrame({"client_id": [1, 1, 1, 2], "day": np.array([0, 6, 6, 0], np.int16),
                       "amount": [100.0, -20.0, 50.0, 10.0], "category": ["gambling", "food", "food", "food"]})
    features = baseline.transaction_features(tx, 7, windows=(1, 7))
    assert features.loc[1, "tx_count_7d"] == 3 and features.loc[1, "tx_count_1d"] == 2
    assert features.loc[1, "spend_7d"] == 150 and features.loc[1, "refund_sum_1d"] == 20
    assert features.loc[1, "max_amount_1d"] == 50 and features.loc[1, "risky_spend_7d"] == 100
    assert features.loc[1, "active_days_7d"] == 2 and features.loc[1, "refund_count_7d"] == 1
    assert 2 not in features.index[features["tx_count_1d"].notna()]


def test_targets_and_table_say_met_missed_and_not_measured():
    scale = {"clients": 100_000, "baseline": {"wall_seconds": 10.0, "peak_rss_gib": 0.5, "clients_per_second": 10_000},
             "ratios": {"steady_vs_baseline": 3.0, "backfill_in_steady_days": 9.0}}
    for name, wall in (("cold", 60.0), ("steady", 30.0), ("backfill", 270.0), ("noop", 2.5)):
        scale[name] = {"wall_seconds": wall, "peak_rss_gib": 1.0, "stages": {}, "outside_tasks_seconds": 0.0}
    scale["backfill"]["days"] = 30
    results = {"scales": [scale]}
    results["targets"] = run.evaluate_targets(results)
    status = {(t["target"], t["clients"]): t["status"] for t in results["targets"]}
    assert status[("no-op 30-day rerun", 100_000)] == "met"
    assert status[("backfill 30 days / one steady-state day", 100_000)] == "met"
    assert status[("steady-state night / pandas baseline", 1_000_000)] == "not measured"
    table = run.format_table(results)
    assert "| 100k | steady-state night | 30.0 | 1.00 |" in table and "3.00x" in table
    json.dumps(results)

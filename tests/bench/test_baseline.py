"""The benchmark's baseline computes nightshift's features and scores, and its result table formats and lands in docs."""
import importlib.util
import argparse
import json
import sqlite3

import numpy as np
import pandas as pd
import pytest
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


def _results() -> dict:
    """The results of a 100k scale point with every scenario, as bench/run.py saves them."""
    scale = {"clients": 100_000, "baseline": {"wall_seconds": 10.0, "peak_rss_gib": 0.5, "clients_per_second": 10_000,
                                              "stages": {"features": 8.0, "score": 1.0, "publish": 1.0}},
             "ratios": {"steady_vs_baseline": 3.0, "backfill_in_steady_days": 9.0}}
    for name, wall in (("cold", 60.0), ("steady", 30.0), ("backfill", 270.0), ("noop", 1.2)):
        scale[name] = {"wall_seconds": wall, "peak_rss_gib": 1.0, "stages": {}, "outside_tasks_seconds": 0.0}
    scale["backfill"]["days"] = 30
    scale["steady"].update(import_seconds=0.4, scheduling_seconds=0.3, jvm_start_seconds=4.0,
                           jvm_started_in="ClientFeatures",
                           stages={"ClientFeatures": {"seconds": 12.0, "count": 1}, "Predict": {"seconds": 5.0, "count": 1}})
    scale["stages"] = run.steady_stages(scale["steady"], scale["baseline"])
    results = {"scales": [scale], "finished": "2026-11-27T16:06:00+00:00", "bench_seconds": 690.0,
               "machine": {"cores": 2, "cpu": "AMD EPYC", "memory_gib": 23.5, "load_average_at_start": [1.29]}}
    results["targets"] = run.evaluate_targets(results)
    return results


def test_targets_and_table_say_met_missed_and_not_measured():
    results = _results()
    status = {(t["target"], t["clients"]): t["status"] for t in results["targets"]}
    assert status[("no-op 30-day rerun", 100_000)] == "met"
    assert status[("backfill 30 days / one steady-state day", 100_000)] == "met"
    assert status[("steady-state night / pandas baseline", 1_000_000)] == "not measured"
    assert status[("steady-state night / pandas baseline", 100_000)] == "met"
    assert status[("`import tasks` (steady night's process)", 100_000)] == "met"
    table = run.format_table(results)
    assert "| 100k | steady-state night | 30.0 | 1.00 |" in table and "3.00x" in table
    json.dumps(results)


def test_steady_stages_take_the_jvm_start_out_of_the_task_that_paid_it_and_add_up_to_the_wall_time():
    stages = _results()["scales"][0]["stages"]
    night = stages["steady"]
    assert night["jvm_start"] == 4.0 and night["ClientFeatures"] == 8.0 and night["Predict"] == 5.0
    assert round(sum(night.values()), 2) == 30.0
    assert stages["baseline"]["features"] == 8.0
    table = run.format_table(_results())
    assert "| jvm start | 4.0 |" in table and "| ClientFeatures | 8.0 |" in table


def test_results_table_goes_between_the_markers_of_docs_benchmark_and_never_into_the_readme(tmp_path, monkeypatch):
    assert run.TABLE_PAGE == str(REPO / "docs" / "benchmark.md")
    shipped = (REPO / "docs" / "benchmark.md").read_text()
    assert shipped.count("<!-- bench:start -->") == 1 and shipped.count("<!-- bench:end -->") == 1
    assert "bench:start" not in (REPO / "README.md").read_text()

    page = tmp_path / "benchmark.md"
    page.write_text("# Benchmark\n\n<!-- bench:start -->\nold table\n<!-- bench:end -->\n\nReading it.\n")
    monkeypatch.setattr(run, "TABLE_PAGE", str(page))
    readme = (REPO / "README.md").read_bytes()
    args = argparse.Namespace(out=str(tmp_path / "latest.json"), no_readme=True)
    assert run.report(_results(), args) == 0
    assert "old table" in page.read_text()
    # a side run's figure goes beside its JSON, named after it, and leaves the page's stages.svg alone
    assert (tmp_path / "latest.svg").exists() and not (tmp_path / "stages.svg").exists()

    args.no_readme = False
    assert run.report(_results(), args) == 0
    text = page.read_text()
    assert "old table" not in text and text.startswith("# Benchmark\n") and text.endswith("Reading it.\n")
    assert "| 100k | steady-state night | 30.0 | 1.00 |" in text and "`make bench` took 11.5 min" in text
    assert (tmp_path / "stages.svg").exists()
    assert (REPO / "README.md").read_bytes() == readme


def test_a_page_without_markers_is_refused_and_left_as_it_was(tmp_path):
    page = tmp_path / "benchmark.md"
    page.write_text("# Benchmark\n")
    with pytest.raises(SystemExit, match="bench:start"):
        run.write_table("| table |", _results(), str(page))
    assert page.read_text() == "# Benchmark\n"

"""The gate's checks as pure functions: measured value, threshold and verdict per check."""
import numpy as np
import pytest

from nightshift import checks, metrics


def by_name(results):
    return {c["name"]: c for c in results}


def test_healthy_scores_pass_every_score_check():
    scores = np.linspace(0.01, 0.9, 100)
    results = by_name(checks.check_scores(scores, np.arange(100), expected_rows=100))
    assert {c["verdict"] for c in results.values()} == {"pass"}
    assert results["row_count"]["measured"] == results["row_count"]["threshold"] == 100


def test_missing_rows_nan_out_of_range_and_duplicates_fail_with_counts():
    scores = np.array([0.1, np.nan, np.inf, 1.5, -0.2, 0.3])
    ids = np.array([4, 2, 3, 1, 4, 5])  # the repeated id apart, as in a real batch
    results = by_name(checks.check_scores(scores, ids, expected_rows=10))
    assert results["row_count"]["verdict"] == "fail" and results["row_count"]["measured"] == 6
    assert results["missing_or_non_finite_scores"]["measured"] == 2
    assert results["scores_outside_0_1"]["measured"] == 2
    assert results["duplicate_client_ids"]["measured"] == 1
    assert checks.verdict(list(results.values()), approved=False) == "rejected"
    assert checks.verdict(list(results.values()), approved=True) == "approved"


def test_schema_names_the_wrong_column_and_type():
    good = checks.check_schema({"client_id": "int64", "score": "double", "model_version": "string"})
    bad = checks.check_schema({"client_id": "int64", "score": "string"})
    assert good["verdict"] == "pass"
    assert bad["verdict"] == "fail" and bad["measured"] == 2
    assert "score: expected double, found string" in bad["detail"]
    assert "model_version: expected string, found nothing" in bad["detail"]


def test_psi_levels_follow_warn_and_fail_thresholds():
    rng = np.random.default_rng(0)
    reference_scores = rng.beta(2, 20, 5000)
    edges = metrics.quantile_edges(reference_scores)
    reference = {"edges": edges, "counts": metrics.histogram(reference_scores, edges)}
    same = checks.check_psi(rng.beta(2, 20, 5000), reference, 0.1, 0.25)
    shifted = np.clip(rng.beta(2, 20, 5000) + 0.1, 0, 1)
    moved = checks.check_psi(shifted, reference, 0.1, 0.25)
    assert same["verdict"] == "pass" and same["measured"] < 0.1
    assert moved["verdict"] == "fail" and moved["measured"] > 0.25
    assert moved["histogram"] == metrics.histogram(shifted, edges)
    between = checks.check_psi(shifted, reference, moved["measured"] / 2, moved["measured"] * 2)
    assert between["verdict"] == "warn"
    assert checks.verdict([between], approved=False) == "accepted"


def test_mean_shift_is_relative_to_the_last_published_day_and_skipped_without_one():
    assert checks.check_mean_shift(0.06, None, None, 0.25)["verdict"] == "skip"
    ok = checks.check_mean_shift(0.066, 0.06, "2026-03-02", 0.25)
    assert ok["verdict"] == "pass" and ok["measured"] == pytest.approx(0.1)
    bad = checks.check_mean_shift(0.18, 0.06, "2026-03-02", 0.25)
    assert bad["verdict"] == "fail" and bad["measured"] == pytest.approx(2.0)
    assert "2026-03-02" in bad["detail"]
    assert checks.verdict([bad, checks.check_mean_shift(0.06, None, None, 0.25)], approved=False) == "rejected"


def partition(path, rows, rejected, **reasons) -> dict:
    return {"path": path, "rows": rows, "rejected": rejected, "reasons": reasons or {"age: not a number": rejected}}


def test_quarantine_rate_gates_the_worst_partition_with_its_count_per_reason():
    ok = checks.check_quarantine([partition("q/clients/date=D", 600, 2)], 0.01)
    assert ok["verdict"] == "pass" and ok["measured"] == pytest.approx(2 / 600, abs=1e-6)
    # Pooled with a large clean day the bad day would be 33 of 10600 (0.3 %): it must fail on its own share.
    bad = checks.check_quarantine([
        partition("q/transactions/date=d1", 10_000, 0),
        partition("q/transactions/date=d2", 600, 33, **{"salary: unparseable": 30, "age: not a number": 3}),
    ], 0.01)
    assert bad["verdict"] == "fail" and bad["measured"] == pytest.approx(33 / 600, abs=1e-6)
    assert "33 of 600 raw rows quarantined in q/transactions/date=d2" in bad["detail"]
    assert "salary: unparseable: 30" in bad["detail"] and "worst of 2 partition(s)" in bad["detail"]


def test_a_partition_without_row_counts_is_reported_unknown_not_measured_against_zero_rows():
    result = checks.check_quarantine([partition("q/a", 600, 3), partition("q/old", None, 500)], 0.01)
    assert result["verdict"] == "pass" and result["measured"] == pytest.approx(3 / 600, abs=1e-6)
    assert "rows read unknown (no _counts.json) for 1 partition(s): q/old" in result["detail"]
    nothing = checks.check_quarantine([partition("q/old", None, 500)], 0.01)
    assert nothing["verdict"] == "skip" and nothing["measured"] is None


def test_describe_names_measured_value_and_threshold():
    line = checks.describe({"name": "psi", "measured": 0.71, "threshold": {"warn": 0.1, "fail": 0.25},
                            "verdict": "fail", "detail": ""})
    assert line == "psi = 0.71 (threshold warn 0.1, fail 0.25)"


@pytest.mark.parametrize(
    "rows, history, verdict, setting",
    [
        (600, [600, 590, 610], "pass", None),
        (300, [600, 590, 610], "pass", None),          # exactly half of 600: the bound itself passes
        (299, [600, 590, 610], "fail", "min_volume_ratio"),
        (1300, [600, 620, 640], "fail", "max_volume_ratio"),
        (0, [100, 100], "fail", "min_volume_ratio"),
        (600, [], "skip", None),                       # nothing to compare with yet
        (600, [0, 0, 5], "skip", None),                # the median day was empty
    ],
)
def test_check_volume_against_the_median_of_earlier_drops(rows, history, verdict, setting):
    result = checks.check_volume(rows, history, min_ratio=0.5, max_ratio=2.0)
    assert (result["verdict"], result["setting"]) == (verdict, setting)
    assert result["drops"] == len(history)


def test_check_volume_uses_the_median_so_one_odd_day_does_not_move_the_bar():
    result = checks.check_volume(50, [100, 100, 100, 5000, 100], min_ratio=0.5, max_ratio=2.0)
    assert result["median"] == 100 and result["ratio"] == 0.5 and result["verdict"] == "pass"


def test_a_ratio_of_zero_disables_its_side():
    assert checks.check_volume(0, [100], min_ratio=0, max_ratio=2.0)["verdict"] == "pass"
    assert checks.check_volume(10_000, [100], min_ratio=0.5, max_ratio=0)["verdict"] == "pass"
    assert checks.check_volume(10, [100], min_ratio=0.5, max_ratio=0)["verdict"] == "fail"


def test_describe_volume_names_file_rows_median_and_setting():
    result = checks.check_volume(180, [600, 600, 580], min_ratio=0.5, max_ratio=2.0)
    line = checks.describe_volume("raw/clients/dt=2026-03-01/clients.csv", result, window_days=7)
    assert line.startswith("raw/clients/dt=2026-03-01/clients.csv: 180 rows, 0.30 x the median 600 rows of the 3 drop(s)")
    assert "below [validate] min_volume_ratio = 0.5" in line and "\n" not in line

"""PSI and histograms on known distributions."""
import math

import numpy as np
import pytest

from nightshift import metrics
from nightshift.metrics import histogram, population_stability_index, quantile_edges


def test_psi_of_identical_distributions_is_zero():
    assert population_stability_index([10, 20, 30, 40], [1, 2, 3, 4]) == pytest.approx(0.0)


def test_psi_matches_hand_computed_value():
    expected, actual = [50, 50], [80, 20]
    by_hand = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert population_stability_index(expected, actual) == pytest.approx(by_hand)


def test_psi_grows_with_the_shift_and_stays_finite_for_empty_bins():
    rng = np.random.default_rng(0)
    ref = rng.beta(2, 20, 20_000)
    edges = quantile_edges(ref)
    base = histogram(ref, edges)
    small = population_stability_index(base, histogram(rng.beta(2, 18, 20_000), edges))
    large = population_stability_index(base, histogram(rng.beta(4, 10, 20_000), edges))
    assert small < 0.1 < 0.25 < large
    assert math.isfinite(population_stability_index([10, 0, 10], [0, 10, 10]))


def test_psi_refuses_mismatched_or_empty_histograms():
    with pytest.raises(ValueError):
        population_stability_index([1, 2], [1, 2, 3])
    with pytest.raises(ValueError):
        population_stability_index([0, 0], [1, 2])


def test_quantile_edges_cover_zero_to_one_and_split_evenly():
    scores = np.linspace(0.01, 0.5, 1000)
    edges = quantile_edges(scores, bins=4)
    assert edges[0] == 0.0 and edges[-1] == 1.0
    assert histogram(scores, edges) == [250, 250, 250, 250]


def test_feature_reference_keeps_repeated_values_in_one_bin_and_counts_missing_apart():
    from nightshift.metrics import feature_histogram, feature_reference

    values = np.array([0, 0, 0, 0, 0, 0, 1, 2, 3, np.nan])
    ref = feature_reference(values, bins=4)
    assert sum(ref["counts"]) == 9 and ref["missing"] == 1
    assert ref["counts"][0] == 6, "all the zeros share the first bin"
    beyond = feature_histogram(np.array([-5.0, 100.0, np.nan, np.nan]), ref)
    assert beyond["counts"][0] == 1 and beyond["counts"][-1] == 1 and beyond["missing"] == 2


def test_a_value_on_a_cut_point_falls_in_the_bin_the_cut_closes():
    from nightshift.metrics import feature_histogram

    reference = {"edges": [1.0, 2.0, 5.0]}  # bins (-inf, 1], (1, 2], (2, 5], (5, inf)
    values = np.array([-np.inf, 1.0, 1.0000001, 2.0, 2.5, 5.0, 5.5, np.inf, np.nan])
    assert feature_histogram(values, reference) == {"counts": [2, 2, 2, 2], "missing": 1}
    assert feature_histogram(np.array([]), reference) == {"counts": [0, 0, 0, 0], "missing": 0}


def test_feature_psi_is_zero_on_the_same_data_and_large_when_it_shifts():
    from nightshift.metrics import feature_psi, feature_reference

    rng = np.random.default_rng(1)
    salary = rng.lognormal(11, 0.5, 20_000)
    ref = feature_reference(salary)
    assert feature_psi(salary, ref) == pytest.approx(0.0, abs=1e-12)
    assert feature_psi(rng.lognormal(11, 0.5, 20_000), ref) < 0.01
    assert feature_psi(salary * np.exp(-1.0), ref) > 1.0
    flags = np.r_[np.zeros(500), np.ones(500)]
    assert feature_psi(np.r_[np.zeros(800), np.ones(200)], feature_reference(flags)) > 0.1
    with_missing = np.r_[salary[:1000], np.full(300, np.nan)]
    assert feature_psi(with_missing, ref) > 0.25, "missing values appearing is drift"


def test_realized_performance_matches_sklearn_and_judges_against_the_holdout_auc():
    from sklearn.metrics import brier_score_loss, roc_auc_score

    from nightshift.metrics import realized_performance

    rng = np.random.default_rng(2)
    p = rng.beta(2, 20, 5000)
    y = (rng.random(5000) < p).astype(int)
    got = realized_performance(y, p, expected_auc=0.70, max_auc_drop=0.05, min_auc=0.0)
    assert got["auc"] == pytest.approx(roc_auc_score(y, p)) and got["brier"] == pytest.approx(brier_score_loss(y, p))
    assert got["rows"] == 5000 and got["base_rate"] == pytest.approx(y.mean())
    assert got["verdict"] == "ok" and got["reasons"] == []

    high = realized_performance(y, p, expected_auc=got["auc"] + 0.051, max_auc_drop=0.05, min_auc=0.0)
    assert high["verdict"] == "degraded" and "max_auc_drop 0.05" in high["reasons"][0]
    assert realized_performance(y, p, expected_auc=got["auc"] + 0.049, max_auc_drop=0.05,
                                min_auc=0.0)["verdict"] == "ok"
    floor = realized_performance(y, p, expected_auc=None, max_auc_drop=0.05, min_auc=0.99)
    assert floor["verdict"] == "degraded" and "min_auc 0.99" in floor["reasons"][0]
    assert floor["notes"], "an unknown holdout AUC is said"
    one_class = realized_performance(np.zeros(10, int), p[:10], expected_auc=0.7, max_auc_drop=0.05, min_auc=0.5)
    assert one_class["auc"] is None and one_class["verdict"] == "ok" and "AUC is undefined" in one_class["notes"][0]
    with pytest.raises(ValueError):
        realized_performance(y[:3], p[:4], 0.7, 0.05, 0.0)


def test_auc_and_brier_equal_scikit_learns_with_and_without_ties():
    from sklearn.metrics import brier_score_loss, roc_auc_score

    rng = np.random.default_rng(3)
    for n, decimals in ((7, 1), (5000, 2), (5000, 12)):  # few distinct scores (many ties), then almost none
        y = rng.integers(0, 2, n)
        p = np.round(rng.random(n), decimals)
        assert metrics.auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        assert metrics.brier(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-15)
    assert metrics.auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert metrics.auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5

"""PSI and histograms on known distributions."""
import math

import numpy as np
import pytest

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

"""Score-distribution and model-quality maths: histograms, PSI, AUC, Brier. No luigi, no Spark."""
import numpy as np

PSI_EPSILON = 1e-4


def quantile_edges(scores: np.ndarray, bins: int = 10) -> list[float]:
    """Bin edges at the quantiles of reference scores, widened to [0, 1] so any score falls in a bin."""
    inner = np.unique(np.quantile(scores, np.linspace(0, 1, bins + 1)[1:-1]))
    return [0.0, *[float(e) for e in inner], 1.0]


def histogram(scores: np.ndarray, edges: list[float]) -> list[int]:
    """Counts of scores per bin; the last bin includes 1.0."""
    counts, _ = np.histogram(np.clip(scores, 0.0, 1.0), bins=np.asarray(edges))
    return [int(c) for c in counts]


def population_stability_index(expected: list[int] | np.ndarray, actual: list[int] | np.ndarray) -> float:
    """PSI = sum((a - e) * ln(a / e)) over bins of two count vectors, each normalised to shares.

    Empty bins get a small epsilon share so the logarithm stays finite. Rule of thumb: below 0.1 is
    stable, 0.1-0.25 a moderate shift, above 0.25 a major one.
    """
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    if e.shape != a.shape or e.sum() <= 0 or a.sum() <= 0:
        raise ValueError(f"PSI needs two non-empty histograms of the same bins, got {e.shape} and {a.shape}")
    e = np.maximum(e / e.sum(), PSI_EPSILON)
    a = np.maximum(a / a.sum(), PSI_EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a random positive scores above a random negative, a tie counting
    half (the Mann-Whitney statistic, from average ranks). Needs both outcomes."""
    y = np.asarray(labels, dtype=int)
    p = np.asarray(scores, dtype=float)
    _, position, counts = np.unique(p, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[position]  # 1-based, tied scores share their average rank
    positives = int(y.sum())
    negatives = len(y) - positives
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def brier(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean squared difference between the probabilities and the 0/1 outcomes."""
    return float(np.mean((np.asarray(scores, dtype=float) - np.asarray(labels, dtype=float)) ** 2))


def quality(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Ranking (AUC) and calibration (Brier) of probabilities against observed 0/1 outcomes, in numpy alone: the
    nightly monitoring must not pay scikit-learn's import (about a second)."""
    return {"auc": auc(labels, scores), "brier": brier(labels, scores)}


def feature_reference(values: np.ndarray, bins: int = 10) -> dict:
    """A feature's reference histogram: cut points at its quantiles, counts per bin, and missing values apart.

    Bins are (-inf, c1], (c1, c2], ..., (ck, inf): right-closed, so a value repeated across a quantile
    (the zeros of a count, the 0/1 of a flag) stays in one bin, and open-ended, so tonight's values
    beyond the training range still fall in the outer bins. NaN and None count as `missing`.
    """
    x = np.asarray(values, dtype=float)
    present = x[~np.isnan(x)]
    cuts = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1])) if len(present) else np.array([])
    reference = {"edges": [float(c) for c in cuts]}
    reference.update(feature_histogram(x, reference))
    return reference


def feature_histogram(values: np.ndarray, reference: dict) -> dict:
    """Counts of `values` in a feature reference's bins (`counts`) and how many are missing (`missing`).

    Counted as the values at or below each cut point (NaN is neither), one vectorised comparison per cut: for the
    handful of cuts a reference has, ten times faster than locating each value by binary search (17 features of
    1M rows: 0.04 s against 0.4 s).
    """
    x = np.asarray(values, dtype=float)
    missing = int(np.count_nonzero(np.isnan(x)))
    at_or_below = [int(np.count_nonzero(x <= cut)) for cut in reference["edges"]]
    counts = np.diff([0, *at_or_below, len(x) - missing])
    return {"counts": [int(c) for c in counts], "missing": missing}


def feature_psi(values: np.ndarray, reference: dict) -> float:
    """PSI of a feature's values against its reference histogram, the missing share counted as one more bin."""
    today = feature_histogram(values, reference)
    return population_stability_index([*reference["counts"], reference.get("missing", 0)],
                                      [*today["counts"], today["missing"]])


def realized_performance(labels: np.ndarray, scores: np.ndarray, expected_auc: float | None,
                         max_auc_drop: float, min_auc: float) -> dict:
    """How a published day's scores did against the outcomes that landed, and whether the model degraded.

    `labels` and `scores` are the rows of the join (one per client published and labelled). The day
    is `degraded` when its AUC is below `expected_auc - max_auc_drop` (the model's holdout AUC, when
    known) or below the floor `min_auc`. AUC needs both outcomes: a one-class join has no AUC and
    is judged on nothing (`ok`, with the reason in `notes`).
    """
    y = np.asarray(labels, dtype=int)
    p = np.asarray(scores, dtype=float)
    if len(y) != len(p):
        raise ValueError(f"{len(y)} labels for {len(p)} scores")
    result = {"rows": int(len(y)), "positives": int(y.sum()), "base_rate": float(y.mean()) if len(y) else None,
              "mean_score": float(p.mean()) if len(p) else None, "auc": None, "brier": None,
              "expected_auc": expected_auc, "max_auc_drop": max_auc_drop, "min_auc": min_auc,
              "verdict": "ok", "reasons": [], "notes": []}
    if not len(y):
        result["notes"].append("no published client has a label")
        return result
    if len(np.unique(y)) < 2:
        result["brier"] = brier(y, p)
        result["notes"].append(f"every label is {int(y[0])}: AUC is undefined")
        return result
    result.update(quality(y, p))
    if expected_auc is None:
        result["notes"].append("the model's holdout AUC is unknown: only the floor min_auc applies")
    elif result["auc"] < expected_auc - max_auc_drop:
        result["reasons"].append(f"realized AUC {result['auc']:.4f} < holdout AUC {expected_auc:.4f} - "
                                 f"max_auc_drop {max_auc_drop}")
    if result["auc"] < min_auc:
        result["reasons"].append(f"realized AUC {result['auc']:.4f} < min_auc {min_auc}")
    result["verdict"] = "degraded" if result["reasons"] else "ok"
    return result

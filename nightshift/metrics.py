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


def quality(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Ranking (AUC) and calibration (Brier) of probabilities against observed 0/1 outcomes."""
    # scikit-learn takes seconds to import; the gate's histogram maths must not pay for it.
    from sklearn.metrics import brier_score_loss, roc_auc_score

    return {"auc": float(roc_auc_score(labels, scores)), "brier": float(brier_score_loss(labels, scores))}

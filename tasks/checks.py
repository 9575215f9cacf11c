"""The validation gate's checks on a batch of scores. No luigi, no Spark."""
import numpy as np

from tasks import metrics


def _check(name: str, measured, threshold, passed: bool, level: str = "fail") -> dict:
    return {"name": name, "measured": measured, "threshold": threshold,
            "verdict": "pass" if passed else level}


def run_checks(scores: np.ndarray, expected_rows: int, reference: dict, psi_warn: float, psi_fail: float) -> list[dict]:
    """Row count, missing/non-finite scores, range and PSI against the model's reference histogram.

    Each check reports its measured value, its threshold and a verdict: pass, warn or fail.
    """
    finite = np.isfinite(scores)
    in_range = finite & (scores >= 0.0) & (scores <= 1.0)
    checks = [
        _check("row_count", int(len(scores)), int(expected_rows), len(scores) == expected_rows),
        _check("missing_or_non_finite_scores", int((~finite).sum()), 0, bool(finite.all())),
        _check("scores_outside_0_1", int((finite & ~in_range).sum()), 0, bool(in_range[finite].all())),
    ]
    if len(scores) and finite.any():
        counts = metrics.histogram(scores[finite], reference["edges"])
        psi = metrics.population_stability_index(reference["counts"], counts)
        level = "pass" if psi < psi_warn else "warn" if psi < psi_fail else "fail"
        checks.append({"name": "psi", "measured": round(psi, 6), "threshold": {"warn": psi_warn, "fail": psi_fail},
                       "verdict": level, "histogram": counts})
    return checks


def failed(checks: list[dict]) -> list[dict]:
    return [c for c in checks if c["verdict"] == "fail"]


def verdict(checks: list[dict], approved: bool) -> str:
    """accepted when no check failed; approved when a person overrode failures; else rejected."""
    if not failed(checks):
        return "accepted"
    return "approved" if approved else "rejected"

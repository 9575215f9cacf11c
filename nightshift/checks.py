"""The validation gate's checks on a batch of scores. No luigi, no Spark."""
import numpy as np

from nightshift import metrics
from nightshift.schema import PREDICTION_SCHEMA


def _check(name: str, measured, threshold, passed: bool, level: str = "fail", detail: str = "") -> dict:
    return {"name": name, "measured": measured, "threshold": threshold,
            "verdict": "pass" if passed else level, "detail": detail}


def check_schema(fields: dict[str, str]) -> dict:
    """The predictions' columns and types: client_id int64, score double, model_version string."""
    expected = {field.name: str(field.type) for field in PREDICTION_SCHEMA}
    # A string column may come back as large_string (pyarrow's choice for big files): the same contract.
    problems = [f"{name}: expected {kind}, found {fields.get(name, 'nothing')}"
                for name, kind in expected.items() if fields.get(name, "").replace("large_", "") != kind]
    return _check("schema", len(problems), 0, not problems, detail="; ".join(problems))


def check_scores(scores: np.ndarray, client_ids: np.ndarray, expected_rows: int) -> list[dict]:
    """Row count against the feature table, duplicated clients, missing or non-finite scores, range [0, 1]."""
    finite = np.isfinite(scores)
    in_range = finite & (scores >= 0.0) & (scores <= 1.0)
    duplicated = int(len(client_ids) - len(np.unique(client_ids)))
    return [
        _check("row_count", int(len(scores)), int(expected_rows), len(scores) == expected_rows,
               detail="rows scored vs rows of the feature table"),
        _check("duplicate_client_ids", duplicated, 0, duplicated == 0),
        _check("missing_or_non_finite_scores", int((~finite).sum()), 0, bool(finite.all())),
        _check("scores_outside_0_1", int((finite & ~in_range).sum()), 0, bool(in_range[finite].all())),
    ]


def check_psi(scores: np.ndarray, reference: dict, psi_warn: float, psi_fail: float) -> dict:
    """PSI of the finite scores against the model's reference histogram (same bin edges)."""
    finite = scores[np.isfinite(scores)]
    if not len(finite):
        return {**_check("psi", None, {"warn": psi_warn, "fail": psi_fail}, False, detail="no finite score"),
                "histogram": [0] * len(reference["counts"])}
    counts = metrics.histogram(finite, reference["edges"])
    psi = metrics.population_stability_index(reference["counts"], counts)
    level = "pass" if psi < psi_warn else "warn" if psi < psi_fail else "fail"
    return {"name": "psi", "measured": round(psi, 6), "threshold": {"warn": psi_warn, "fail": psi_fail},
            "verdict": level, "detail": "against the model's holdout scores", "histogram": counts}


def check_mean_shift(mean_today: float, mean_last: float | None, last_date: str | None, max_shift: float,
                     unknown: str | None = None) -> dict:
    """Relative change of the mean score against the last published day: |today / last - 1|.

    `unknown` says why the last published day cannot be known (its database is unreachable): the check is skipped
    with that reason instead of failing the batch.
    """
    if unknown is not None:
        return {**_check("mean_score_shift", None, max_shift, True, detail=unknown), "verdict": "skip"}
    if mean_last is None:
        return {**_check("mean_score_shift", None, max_shift, True, detail="no published day before this one"),
                "verdict": "skip"}
    if not np.isfinite(mean_today):
        return _check("mean_score_shift", None, max_shift, False, detail="today's mean score is not finite")
    shift = abs(mean_today / mean_last - 1.0) if mean_last > 0 else float("inf")
    return _check("mean_score_shift", round(shift, 6), max_shift, shift <= max_shift,
                  detail=f"mean score {mean_today:.5f} today vs {mean_last:.5f} published for {last_date}")


def check_quarantine(rejected_by_reason: dict[str, int], total: int, max_rate: float) -> dict:
    """Share of the day's raw rows (client snapshot and transaction window) quarantined, with the count per reason."""
    rejected = sum(rejected_by_reason.values())
    rate = rejected / total if total else 0.0
    reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(rejected_by_reason.items()))
    return _check("quarantine_rate", round(rate, 6), max_rate, rate <= max_rate,
                  detail=f"{rejected} of {total} raw rows quarantined" + (f" ({reasons})" if reasons else ""))


def failed(checks: list[dict]) -> list[dict]:
    return [c for c in checks if c["verdict"] == "fail"]


def verdict(checks: list[dict], approved: bool) -> str:
    """accepted when no check failed; approved when a person overrode failures; else rejected."""
    if not failed(checks):
        return "accepted"
    return "approved" if approved else "rejected"


def describe(check: dict) -> str:
    """One line for messages and mails: name, measured value, threshold (and the detail when there is one)."""
    threshold = check["threshold"]
    if isinstance(threshold, dict):
        threshold = ", ".join(f"{k} {v}" for k, v in threshold.items())
    line = f"{check['name']} = {check['measured']} (threshold {threshold})"
    return f"{line}: {check['detail']}" if check.get("detail") else line

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
    ordered = np.sort(client_ids)  # neighbours after a sort: np.unique's hashing is 15x slower on 1M int64 ids
    duplicated = int(np.count_nonzero(ordered[1:] == ordered[:-1]))
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


def check_quarantine(partitions: list[dict], max_rate: float) -> dict:
    """The highest rejected share of one raw partition (the client snapshot, each day of the transaction window).

    `partitions` are `{"path", "rows", "rejected", "reasons"}`; `rows` is None where the rows read are unknown
    (a quarantine folder written without `_counts.json`): such a partition is listed as unknown, never measured
    against 0 rows. The worst partition is gated, not the pool: a bad day must not hide among good ones.
    The feature stage fails a partition above the same threshold when it writes it; this check re-reads every
    partition the night uses, including those written on earlier nights under other settings.
    """
    known = [p for p in partitions if p.get("rows")]
    unknown = [p["path"] for p in partitions if not p.get("rows")]
    unknown_note = (f"; rows read unknown (no _counts.json) for {len(unknown)} partition(s): {', '.join(unknown)}"
                    if unknown else "")
    if not known:
        return {**_check("quarantine_rate", None, max_rate, True,
                         detail=f"no partition with known row counts{unknown_note}"), "verdict": "skip"}
    worst = max(known, key=lambda p: (p["rejected"] / p["rows"], p["path"]))
    rate = worst["rejected"] / worst["rows"]
    reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(worst.get("reasons", {}).items()))
    detail = (f"worst of {len(known)} partition(s): {worst['rejected']} of {worst['rows']} raw rows quarantined in "
              f"{worst['path']}" + (f" ({reasons})" if reasons else "") + unknown_note)
    return _check("quarantine_rate", round(rate, 6), max_rate, rate <= max_rate, detail=detail)


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


def check_volume(rows: int, history: list[int], min_ratio: float, max_ratio: float,
                 min_setting: str = "min_volume_ratio") -> dict:
    """Rows of a raw drop against the median rows of the same drop on the days before (`history`, drops that exist).

    The verdict fails below `min_ratio` x median or above `max_ratio` x median; a ratio of 0 disables its side. With
    no earlier drop, or only empty ones, there is nothing to compare with and the verdict is "skip". The result is a
    check (name, measured, threshold, verdict, detail) plus `median`, `ratio`, `drops` (how many were compared) and
    `setting` (the [validate] key that failed, else None); `min_setting` names the lower bound's key.
    """
    median = float(np.median(history)) if len(history) else None
    ratio = rows / median if median else None
    threshold = {min_setting: min_ratio, "max_volume_ratio": max_ratio}
    result = {"name": "volume", "measured": int(rows), "threshold": threshold, "median": median,
              "ratio": None if ratio is None else round(ratio, 4), "drops": len(history), "setting": None}
    if ratio is None:
        why = "no earlier drop" if not history else "the earlier drops are empty"
        return {**result, "verdict": "skip", "detail": f"{rows} rows; {why} to compare with"}
    if min_ratio > 0 and ratio < min_ratio:
        result["setting"] = min_setting
    elif max_ratio > 0 and ratio > max_ratio:
        result["setting"] = "max_volume_ratio"
    detail = f"{rows} rows, {ratio:.2f} x the median {median:g} of {len(history)} earlier drop(s)"
    return {**result, "verdict": "fail" if result["setting"] else "pass", "detail": detail}


def describe_volume(source: str, check: dict, window_days: int) -> str:
    """The one-line error for a drop whose volume check failed: file, rows, median, ratio and the setting."""
    setting = check["setting"]
    side = "above" if setting == "max_volume_ratio" else "below"
    return (
        f"{source}: {check['measured']} rows, {check['ratio']:.2f} x the median {check['median']:g} rows of the "
        f"{check['drops']} drop(s) of the previous {window_days} days ([validate] volume_window_days), {side} "
        f"[validate] {setting} = {check['threshold'][setting]:g}; a truncated or duplicated delivery? If the volume "
        f"is genuine, set {setting} = 0 for this run"
    )

"""Validation stage: the gate between scoring and production; a rejected batch stops the night."""
import datetime as dt
import json
import logging

import luigi
import numpy as np

from nightshift import checks, metrics
from nightshift.report import render_html
from nightshift.schema import APPROVAL_FILE, HTML_FILE, REPORT_FILE
from targets import fs, sql
from targets.directory import DirectoryTarget, ParquetTarget
from tasks import config
from tasks.errors import ApprovalError, ExplainsFailures, PredictionsRejected
from tasks.features import night_volumes, quarantine_counts
from tasks.predict import Predict
from tasks.provenance import Recorded

logger = logging.getLogger("luigi-interface")


def read_approval(report_dir: DirectoryTarget) -> dict | None:
    uri = report_dir.file(APPROVAL_FILE)
    return json.loads(fs.read_bytes(uri)) if fs.is_file(uri) else None


def build_report(date: dt.date, scores: np.ndarray, results: list[dict], meta: dict, previous: dict | None,
                 approval: dict | None) -> dict:
    """validation.json: the verdict, every check, and what the page's plot needs."""
    verdict = checks.verdict(results, approval is not None)
    psi = next(c for c in results if c["name"] == "psi")
    finite = scores[np.isfinite(scores)]
    report = {
        "date": date.isoformat(),
        "verdict": verdict,
        "psi": psi["measured"],
        "checks": results,
        "failed": [c["name"] for c in checks.failed(results)],
        "model_version": meta["model_version"],
        "rows": int(len(scores)),
        "mean_score": float(finite.mean()) if len(finite) else None,
        "reference_histogram": meta["reference_histogram"],
        "histogram": psi["histogram"],
        "previous": previous,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if verdict == "approved":
        report["approval"] = approval
    return report


class ValidatePredictions(Recorded, ExplainsFailures, luigi.Task):
    """reports/date=D/: validation.json + report.html; complete (flagged) only for an accepted or approved batch."""

    date = luigi.DateParameter()
    config_keys = ("validate.psi_warn", "validate.psi_fail", "validate.max_mean_shift", "validate.max_quarantine_rate")
    frozen_by_publish = True

    def requires(self):
        return Predict(self.date)

    def output(self):
        return DirectoryTarget(config.dataset_path("reports", self.date))

    def run(self):
        predict = self.requires()
        meta = predict.input()["model"].metadata()
        frame = self.input().read_arrow()
        schema = checks.check_schema({f.name: str(f.type) for f in frame.schema})
        scores = frame.column("score").to_numpy(zero_copy_only=False).astype(float) if "score" in frame.column_names \
            else np.array([])
        ids = frame.column("client_id").to_numpy(zero_copy_only=False) if "client_id" in frame.column_names \
            else np.array([])
        expected = predict.input()["table"].read_arrow(columns=["client_id"]).num_rows
        cfg = config.validate()
        previous, unknown = self.previous_day(meta["reference_histogram"]["edges"])
        mean_today = float(np.nanmean(scores)) if len(scores) else float("nan")
        quarantine = quarantine_counts(self.date)
        results = [
            schema,
            *checks.check_scores(scores, ids, expected),
            checks.check_psi(scores, meta["reference_histogram"], cfg.psi_warn, cfg.psi_fail),
            checks.check_mean_shift(mean_today, previous and previous["mean"], previous and previous["date"],
                                    cfg.max_mean_shift, unknown),
            checks.check_quarantine(quarantine["partitions"], cfg.max_quarantine_rate),
        ]
        report_dir = self.output()
        approval = read_approval(report_dir)
        if approval is not None and approval.get("model_version") != meta["model_version"]:
            approval = None  # it approved another model's batch, not this one
        report = build_report(self.date, scores, results, meta, previous, approval)
        report["quarantine"] = {kind: quarantine[kind] for kind in ("clients", "transactions", "rows")}
        report.update(feature_drift(predict.input()["table"], meta))
        report["volumes"] = night_volumes(self.date)
        report_dir.write_file(REPORT_FILE, json.dumps(report, indent=2).encode())
        report_dir.write_file(HTML_FILE, render_html(report).encode())
        if report["verdict"] == "rejected":
            raise PredictionsRejected(rejection_message(report, report_dir.file(HTML_FILE)))
        report_dir.mark_complete(self.manifest(rows=report["rows"]))

    def previous_day(self, edges: list[float]) -> tuple[dict | None, str | None]:
        """Mean and histogram (today's bins) of the last day in production before this one, and why it is unknown.

        They come from the summary Publish stored in that day's publish_log row when it was binned like today (the
        same model): one row read. Otherwise (another model's bins, a day an older release published) the database
        computes them from the day's rows, a pass over a million rows taking 0.3-0.5 s in SQLite.

        With the production database unreachable the batch is still validated on everything else (the
        mean-shift check is skipped, saying why): Publish is the task that needs the database and the one that
        fails, so the rerun once it is back redoes nothing before Publish.
        """
        url = config.publish().database_url()
        try:
            day = sql.previous_publication(url, self.date)
            if day is None:
                return None, None
            stored = sql.stored_summary(url, day)
            if stored is not None and stored.pop("edges", None) == edges:
                return {"date": day.isoformat(), **stored}, None
            return {"date": day.isoformat(), **sql.column_summary(url, "predictions", "score", day, edges)}, None
        except sql.UNREACHABLE as exc:
            where = sql.describe(url)
            logger.warning("production database %s unreachable (%s): the mean-shift check of %s is skipped",
                           where, sql.unreachable_reason(url, exc), self.date)
            return None, f"production database {where} unreachable: the last published day is unknown"


def feature_drift(table: ParquetTarget, meta: dict) -> dict:
    """`feature_psi`: each model input's PSI against its training reference, most drifted first (pyarrow, no Spark).

    Read one column at a time, so a wide table never sits whole in memory. A model trained before
    feature references were kept has none: the drift is then unknown, and `feature_psi_note` says why.
    """
    references = meta.get("feature_reference")
    if not references:
        return {"feature_psi": {}, "feature_psi_note": f"model {meta['model_version']} has no feature_reference "
                                                       "(trained before feature drift was measured); retrain to get it"}
    psi = {}
    for name, reference in references.items():
        values = table.read_arrow(columns=[name]).column(name).to_numpy(zero_copy_only=False).astype(float)
        psi[name] = round(metrics.feature_psi(values, reference), 6) if len(values) else None
    ranked = sorted(((n, v) for n, v in psi.items() if v is not None), key=lambda item: -item[1])
    return {"feature_psi": dict(ranked)}


def rejection_message(report: dict, html_uri: str) -> str:
    failures = "; ".join(checks.describe(c) for c in checks.failed(report["checks"]))
    return f"predictions for {report['date']} rejected: {failures}; report {html_uri}"


def approve(date: dt.date, reason: str, by: str) -> str:
    """Record that a person lets the rejected batch of `date` through; returns the approval file's path.

    Only a date whose latest validation rejected the batch can be approved: approving a day that was never
    validated, or passed, would record an override of nothing.
    """
    report_dir = DirectoryTarget(config.dataset_path("reports", date))
    report_uri = report_dir.file(REPORT_FILE)
    if not reason.strip():
        raise ApprovalError(f"approving {date} needs a reason (--reason)")
    if not fs.is_file(report_uri):
        raise ApprovalError(f"no validation report for {date} at {report_uri}: nothing was rejected to approve")
    report = json.loads(fs.read_bytes(report_uri))
    if report["verdict"] != "rejected":
        raise ApprovalError(f"the batch of {date} was {report['verdict']}, not rejected ({report_uri}): nothing to approve")
    approval = {
        "date": date.isoformat(),
        "by": by,
        "reason": reason.strip(),
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "failed": [checks.describe(c) for c in checks.failed(report["checks"])],
        "model_version": report["model_version"],
    }
    uri = report_dir.file(APPROVAL_FILE)
    fs.write_bytes(uri, json.dumps(approval, indent=2).encode())
    return uri

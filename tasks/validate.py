"""Validation stage: the gate between scoring and production; a rejected batch stops the night."""
import datetime as dt
import html
import json
import logging

import luigi
import numpy as np

from nightshift import checks
from nightshift.schema import APPROVAL_FILE, HTML_FILE, REPORT_FILE
from targets import fs, sql
from targets.directory import DirectoryTarget
from tasks import config
from tasks.errors import ApprovalError, ExplainsFailures, PredictionsRejected
from tasks.features import quarantine_counts
from tasks.predict import Predict

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


_COLOURS = {"reference": "#7f9fb0", "previous": "#9c9c9c", "today": "#d9622b"}


def _histogram_svg(edges: list[float], series: dict[str, tuple[str, list[int]]]) -> str:
    """Grouped bars of each series' share per bin; bins are the model's reference quantiles, so unequal widths."""
    shares = {key: (label, [c / max(sum(counts), 1) for c in counts]) for key, (label, counts) in series.items()}
    top = max(max(values) for _, values in shares.values()) or 1.0
    bins, groups = len(edges) - 1, len(shares)
    left, bottom, height, slot = 60, 250, 200, 64
    bar = (slot - 10) / groups
    width = left + bins * slot + 20
    parts = [f"<svg width='{width}' height='{bottom + 90}' role='img' "
             "aria-label='histogram of scores'>",
             f"<line x1='{left}' y1='{bottom}' x2='{left + bins * slot}' y2='{bottom}' stroke='#333'/>",
             f"<line x1='{left}' y1='{bottom}' x2='{left}' y2='{bottom - height}' stroke='#333'/>"]
    for k in range(5):
        value = top * k / 4
        y = bottom - height * k / 4
        parts.append(f"<text x='{left - 6}' y='{y + 4:.1f}' text-anchor='end' font-size='11'>{value:.0%}</text>")
    for i in range(bins):
        x0 = left + i * slot + 5
        for g, (key, (label, values)) in enumerate(shares.items()):
            h = height * values[i] / top
            parts.append(f"<rect class='{key}' x='{x0 + g * bar:.1f}' y='{bottom - h:.1f}' width='{bar - 1:.1f}' "
                         f"height='{h:.1f}' fill='{_COLOURS[key]}'><title>{html.escape(label)}: "
                         f"{values[i]:.1%}</title></rect>")
        parts.append(f"<text x='{x0 + (slot - 10) / 2:.1f}' y='{bottom + 14}' text-anchor='middle' font-size='10'>"
                     f"{edges[i]:.3f}</text>")
    parts.append(f"<text x='{left + bins * slot / 2}' y='{bottom + 32}' text-anchor='middle' font-size='12'>"
                 "score bin (lower edge; bins are the reference's deciles)</text>")
    for g, (key, (label, _)) in enumerate(shares.items()):
        y = bottom + 50 + g * 14
        parts.append(f"<rect x='{left}' y='{y - 9}' width='10' height='10' fill='{_COLOURS[key]}'/>"
                     f"<text x='{left + 16}' y='{y}' font-size='12'>{html.escape(label)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: dict) -> str:
    """A self-contained page (no script, no external resource): the verdict, the check table, the histogram."""
    def cell(value) -> str:
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        return html.escape("" if value is None else str(value))

    rows = "".join(
        f"<tr class='{c['verdict']}'><td>{cell(c['name'])}</td><td>{cell(c['measured'])}</td>"
        f"<td>{cell(c['threshold'])}</td><td>{cell(c['verdict'])}</td><td>{cell(c.get('detail'))}</td></tr>"
        for c in report["checks"]
    )
    reference = report["reference_histogram"]
    series = {"reference": (f"reference: model {report['model_version']} holdout", reference["counts"])}
    previous = report.get("previous")
    if previous and previous.get("counts") and sum(previous["counts"]):
        series["previous"] = (f"last published day {previous['date']}", previous["counts"])
    series["today"] = (f"today {report['date']}", report["histogram"])
    approval = report.get("approval")
    approved = (f"<p class='approval'>Approved by {cell(approval.get('by'))} at {cell(approval.get('at'))}: "
                f"{cell(approval.get('reason'))}</p>") if approval else ""
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>nightshift {report['date']}: {report['verdict']}</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{padding:4px 10px;border-bottom:1px solid #ccc;text-align:left}"
        "tr.fail td{color:#b00;font-weight:bold}tr.warn td{color:#b60}tr.skip td{color:#888}"
        ".verdict-rejected{color:#b00}.verdict-approved{color:#b60}.verdict-accepted{color:#080}"
        "</style></head><body>"
        f"<h1>Validation {report['date']}: <span class='verdict-{report['verdict']}'>{report['verdict']}</span></h1>"
        f"{approved}<p>model {cell(report['model_version'])}, {report['rows']} rows, mean score "
        f"{cell(None if report['mean_score'] is None else round(report['mean_score'], 5))}, PSI {cell(report['psi'])}</p>"
        "<table><tr><th>check</th><th>measured</th><th>threshold</th><th>verdict</th><th>detail</th></tr>"
        f"{rows}</table><h2>Score distribution</h2>{_histogram_svg(reference['edges'], series)}</body></html>"
    )


class ValidatePredictions(ExplainsFailures, luigi.Task):
    """reports/date=D/: validation.json + report.html; complete (flagged) only for an accepted or approved batch."""

    date = luigi.DateParameter()

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
        rejected = {f"{kind} {reason}": n for kind in ("clients", "transactions")
                    for reason, n in quarantine[kind].items()}
        total = sum(quarantine["rows"].values())
        results = [
            schema,
            *checks.check_scores(scores, ids, expected),
            checks.check_psi(scores, meta["reference_histogram"], cfg.psi_warn, cfg.psi_fail),
            checks.check_mean_shift(mean_today, previous and previous["mean"], previous and previous["date"],
                                    cfg.max_mean_shift, unknown),
            checks.check_quarantine(rejected, total, cfg.max_quarantine_rate),
        ]
        report_dir = self.output()
        approval = read_approval(report_dir)
        if approval is not None and approval.get("model_version") != meta["model_version"]:
            approval = None  # it approved another model's batch, not this one
        report = build_report(self.date, scores, results, meta, previous, approval)
        report["quarantine"] = {kind: quarantine[kind] for kind in ("clients", "transactions", "rows")}
        report_dir.write_file(REPORT_FILE, json.dumps(report, indent=2).encode())
        report_dir.write_file(HTML_FILE, render_html(report).encode())
        if report["verdict"] == "rejected":
            raise PredictionsRejected(rejection_message(report, report_dir.file(HTML_FILE)))
        report_dir.mark_complete()

    def previous_day(self, edges: list[float]) -> tuple[dict | None, str | None]:
        """Mean and histogram (today's bins) of the last day in production before this one, and why it is unknown.

        With the production database unreachable the batch is still validated on everything else (the
        mean-shift check is skipped, saying why): Publish is the task that needs the database and the one that
        fails, so the rerun once it is back runs only Publish.
        """
        url = config.publish().database_url()
        try:
            day = sql.previous_publication(url, self.date)
            if day is None:
                return None, None
            return {"date": day.isoformat(), **sql.column_summary(url, "predictions", "score", day, edges)}, None
        except sql.UNREACHABLE as exc:
            where = sql.describe(url)
            logger.warning("production database %s unreachable (%s): the mean-shift check of %s is skipped",
                           where, sql.unreachable_reason(url, exc), self.date)
            return None, f"production database {where} unreachable: the last published day is unknown"


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

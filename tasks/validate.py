"""Validation stage: the gate between scoring and production; a rejected batch stops the night."""
import json

import luigi

from targets import fs
from targets.directory import DirectoryTarget
from tasks import checks, config
from tasks.errors import PredictionsRejected
from tasks.predict import Predict

APPROVAL_FILE = "approval.json"


def render_html(report: dict) -> str:
    """A self-contained page: the check table and a histogram of today's scores against the reference."""
    rows = "".join(
        f"<tr class='{c['verdict']}'><td>{c['name']}</td><td>{c['measured']}</td><td>{c['threshold']}</td>"
        f"<td>{c['verdict']}</td></tr>" for c in report["checks"]
    )
    psi = next((c for c in report["checks"] if c["name"] == "psi"), None)
    plot = ""
    if psi is not None:
        ref, today = report["reference_histogram"]["counts"], psi["histogram"]
        ref_share = [c / max(sum(ref), 1) for c in ref]
        today_share = [c / max(sum(today), 1) for c in today]
        top = max(ref_share + today_share) or 1
        bars = []
        for i, (r, t) in enumerate(zip(ref_share, today_share)):
            x = 40 + i * 60
            bars.append(f"<rect x='{x}' y='{220 - 200 * r / top:.1f}' width='25' height='{200 * r / top:.1f}' fill='#8aa'/>")
            bars.append(f"<rect x='{x + 26}' y='{220 - 200 * t / top:.1f}' width='25' height='{200 * t / top:.1f}' fill='#d62'/>")
        plot = (f"<svg width='{60 * len(ref) + 80}' height='240'>{''.join(bars)}"
                "<text x='40' y='236'>grey: reference (holdout), orange: today</text></svg>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>nightshift {report['date']}</title>"
            "<style>td,th{padding:4px 10px;border-bottom:1px solid #ccc}.fail{color:#b00}.warn{color:#b60}</style>"
            f"</head><body><h1>Validation {report['date']}: {report['verdict']}</h1>"
            f"<p>model {report['model_version']}</p><table><tr><th>check</th><th>measured</th><th>threshold</th>"
            f"<th>verdict</th></tr>{rows}</table>{plot}</body></html>")


class ValidatePredictions(luigi.Task):
    """reports/date=D/: validation.json + report.html; complete (flagged) only for an accepted or approved batch."""

    date = luigi.DateParameter()

    def requires(self):
        return Predict(self.date)

    def output(self):
        return DirectoryTarget(config.dataset_path("reports", self.date))

    def run(self):
        predict = self.requires()
        model = predict.input()["model"]
        scores = self.input().read_pandas(columns=["score"])["score"].to_numpy()
        expected = predict.input()["table"].read_arrow(columns=["client_id"]).num_rows
        meta = model.metadata()
        cfg = config.validate()
        results = checks.run_checks(scores, expected, meta["reference_histogram"], cfg.psi_warn, cfg.psi_fail)
        report_dir = self.output()
        approved = fs.is_file(report_dir.file(APPROVAL_FILE))
        report = {
            "date": self.date.isoformat(),
            "verdict": checks.verdict(results, approved),
            "psi": next((c["measured"] for c in results if c["name"] == "psi"), None),
            "model_version": meta["model_version"],
            "rows": int(len(scores)),
            "checks": results,
            "reference_histogram": meta["reference_histogram"],
        }
        report_dir.write_file("validation.json", json.dumps(report, indent=2).encode())
        report_dir.write_file("report.html", render_html(report).encode())
        if report["verdict"] == "rejected":
            failures = "; ".join(f"{c['name']} = {c['measured']} (threshold {c['threshold']})"
                                 for c in checks.failed(results))
            raise PredictionsRejected(
                f"predictions for {self.date} rejected: {failures}; report {report_dir.file('report.html')}"
            )
        report_dir.mark_complete()

"""Monitoring stage: published days measured against their labels, the history page and the night's metrics."""
import datetime as dt
import io
import json
import logging
import os
import time

import luigi

from nightshift.schema import HISTORY_FILE, HTML_FILE, KEY, LABEL, LABELS_FILE, PERFORMANCE_FILE, REPORT_FILE
from targets import fs, sql
from targets.directory import DirectoryTarget
from targets.model import METADATA_FILE
from tasks import config
from tasks.alerts import degraded_mail, send_alert
from tasks.errors import ConfigurationError, ExplainsFailures, SchemaError
from tasks.publish import Publish
from tasks.raw import RawLabels

logger = logging.getLogger("luigi-interface")

NIGHT_FILE = "night.json"


def monitor_settings() -> config.monitor:
    """`[monitor]`, refused with the section, key, value and rule when a value cannot work."""
    cfg = config.monitor()
    if cfg.lookback_days < 1:
        raise ConfigurationError(f"[monitor] lookback_days = {cfg.lookback_days}: must be at least 1")
    if not 0.0 <= cfg.max_auc_drop <= 1.0:
        raise ConfigurationError(f"[monitor] max_auc_drop = {cfg.max_auc_drop}: must be between 0 and 1")
    if not 0.0 <= cfg.min_auc <= 1.0:
        raise ConfigurationError(f"[monitor] min_auc = {cfg.min_auc}: must be between 0 and 1 (0 = off)")
    return cfg


def read_labels(uri: str):
    """A label drop file as (client_id int64, defaulted int64); a malformed one fails naming the file."""
    import pandas as pd

    from nightshift.cleaning import parse_labels

    try:
        frame = pd.read_csv(io.BytesIO(fs.read_bytes(uri)), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{uri}: not a readable CSV label drop: {str(exc).strip()}") from None
    return parse_labels(frame, uri)


def model_metadata(version: str) -> dict | None:
    """metadata.json of the model that wrote `version` (`YYYY-MM-DD-xxxxxxxx` → models/YYYY-MM-DD), if still there."""
    try:
        day = dt.date.fromisoformat(version[:10])
    except ValueError:
        return None
    uri = fs.join(config.model_path(day), METADATA_FILE)
    if not fs.is_file(uri):
        return None
    meta = json.loads(fs.read_bytes(uri))
    # A retrain of the same date is another model: its holdout AUC says nothing of this one.
    return meta if meta.get("model_version") == version else None


class RealizedPerformance(ExplainsFailures, luigi.Task):
    """monitoring/date=S/performance.json: the scores production got for S against the outcomes that landed."""

    date = luigi.DateParameter(description="Scoring date S of a published day.")

    def requires(self):
        return {"labels": RawLabels(self.date), "publish": Publish(self.date)}

    def output(self):
        return DirectoryTarget(config.dataset_path("monitoring", self.date))

    def run(self):
        from nightshift import metrics

        cfg = monitor_settings()
        url = self.input()["publish"].url
        marker = sql.published_days(url, self.date, self.date)[self.date]
        labels_uri = self.input()["labels"].file(LABELS_FILE)
        labels = read_labels(labels_uri)
        published = sql.published_scores(url, self.date).to_pandas()
        joined = published.merge(labels, on=KEY, how="inner")
        if joined.empty:
            raise SchemaError(f"{labels_uri}: none of its {len(labels)} clients is among the {len(published)} rows "
                              f"published for {self.date}: the drop is keyed to another day or another client base")
        version = marker["model_version"]
        meta = model_metadata(version)
        measured = metrics.realized_performance(joined[LABEL].to_numpy(), joined["score"].to_numpy(),
                                                meta.get("holdout_auc") if meta else None,
                                                cfg.max_auc_drop, cfg.min_auc)
        if meta is None:
            measured["notes"].append(f"metadata of model {version} not found under {config.path('models')}")
        performance = {
            "date": self.date.isoformat(), "model_version": version, **measured,
            "published_rows": len(published), "labelled_rows": len(labels),
            "labels": labels_uri, "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        with self.output().temporary_path() as tmp:
            fs.write_bytes(fs.join(tmp, PERFORMANCE_FILE), json.dumps(performance, indent=2).encode())
        if performance["verdict"] == "degraded":
            # After the write: a rerun finds the day done and never alerts twice.
            logger.warning("RealizedPerformance %s: %s", self.date, "; ".join(performance["reasons"]))
            send_alert(*degraded_mail(performance, self.output().file(PERFORMANCE_FILE)))


def read_performance(day: dt.date) -> dict | None:
    target = DirectoryTarget(config.dataset_path("monitoring", day))
    return json.loads(target.read_file(PERFORMANCE_FILE)) if target.exists() else None


def collect_history() -> list[dict]:
    """One item per scored day (a reports/date=D/validation.json), with its realized performance when known."""
    reports = config.path("reports")
    days = []
    for name in fs.list_dir(reports):
        if not name.startswith("date="):
            continue
        uri = fs.join(reports, name, REPORT_FILE)
        if not fs.is_file(uri):
            continue
        report = json.loads(fs.read_bytes(uri))
        day = dt.date.fromisoformat(name[len("date="):])
        days.append({"date": day.isoformat(), "rows": report.get("rows"), "mean_score": report.get("mean_score"),
                     "psi": report.get("psi"), "verdict": report.get("verdict"),
                     "model_version": report.get("model_version"), "feature_psi": report.get("feature_psi") or {},
                     "report": f"{name}/{HTML_FILE}", "realized": read_performance(day)})
    return sorted(days, key=lambda d: d["date"])


def write_metrics(path: str, day: dt.date, marker: dict | None, history: list[dict], lookback_days: int) -> None:
    """The night's figures in Prometheus text format, written atomically (write_to_textfile) for node_exporter."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    if fs.scheme(path) not in ("", "file"):
        raise ConfigurationError(f"[monitor] metrics_file = {path!r}: must be a local path (node_exporter's textfile "
                                 "collector reads a local folder); set it when [paths] root is a URI")
    registry = CollectorRegistry()

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, labels, registry=registry)

    gauge("nightshift_last_success_timestamp_seconds",
          "Unix time the last night finished: scores published and monitoring done").set(time.time())
    gauge("nightshift_last_score_date_timestamp_seconds", "The scoring date of the last successful night (midnight UTC)"
          ).set(dt.datetime.combine(day, dt.time(), dt.timezone.utc).timestamp())
    tonight = next((d for d in history if d["date"] == day.isoformat()), None)
    if marker is not None:
        gauge("nightshift_rows_published", "Rows published for the score date", ("score_date",)
              ).labels(day.isoformat()).set(marker["rows"])
    if tonight is not None:
        if tonight["psi"] is not None:
            gauge("nightshift_psi", "PSI of the scores against the model's reference", ("score_date",)
                  ).labels(day.isoformat()).set(tonight["psi"])
        if tonight["mean_score"] is not None:
            gauge("nightshift_mean_score", "Mean score of the night", ("score_date",)
                  ).labels(day.isoformat()).set(tonight["mean_score"])
        feature = gauge("nightshift_feature_psi", "PSI of a model input against the model's training data",
                        ("score_date", "feature"))
        for name, psi in tonight["feature_psi"].items():
            feature.labels(day.isoformat(), name).set(psi)
    first = (day - dt.timedelta(days=lookback_days)).isoformat()
    realized = [d for d in history if d["realized"] and first <= d["date"] < day.isoformat()]
    auc = gauge("nightshift_realized_auc", "AUC of a published day's scores against its labels",
                ("score_date", "model_version"))
    expected = gauge("nightshift_expected_auc", "Holdout AUC of the model that scored the day",
                     ("score_date", "model_version"))
    brier = gauge("nightshift_realized_brier", "Brier score of a published day against its labels", ("score_date",))
    degraded = gauge("nightshift_degraded", "1 when the day's realized performance is degraded", ("score_date",))
    for d in realized:
        r = d["realized"]
        if r.get("auc") is not None:
            auc.labels(d["date"], r["model_version"]).set(r["auc"])
        if r.get("expected_auc") is not None:
            expected.labels(d["date"], r["model_version"]).set(r["expected_auc"])
        if r.get("brier") is not None:
            brier.labels(d["date"]).set(r["brier"])
        degraded.labels(d["date"]).set(1 if r["verdict"] == "degraded" else 0)
    gauge("nightshift_degraded_days", f"Degraded days among the published days of the last lookback_days"
          ).set(sum(1 for d in realized if d["realized"]["verdict"] == "degraded"))
    local = os.path.abspath(path.removeprefix("file://"))
    os.makedirs(os.path.dirname(local), exist_ok=True)
    write_to_textfile(local, registry)


class MonitorModel(ExplainsFailures, luigi.Task):
    """After the night's publish: every published day of the lookback whose labels landed is measured; the history
    page and the metrics file are rebuilt; monitoring/nights/date=D records what they showed."""

    date = luigi.DateParameter()

    def checked_days(self) -> list[dt.date]:
        """Published days S in [D - lookback_days, D - 1] whose label drop has landed (one query, one stat per day).

        Kept for the instance's life, so labels landing while the graph runs do not change requires() between
        scheduling and run(): they are picked up by the next night.
        """
        if getattr(self, "_checked", None) is None:
            cfg = monitor_settings()
            url = config.publish().database_url()
            try:
                published = sql.published_days(url, self.date - dt.timedelta(days=cfg.lookback_days),
                                               self.date - dt.timedelta(days=1))
            except Exception as exc:  # an unreachable database: Publish(D) fails and says so; scheduling must not
                logger.warning("MonitorModel %s: published days unknown (%s)", self.date, str(exc).splitlines()[0])
                return []
            self._checked = [day for day in published if RawLabels(day).complete()]
        return self._checked

    def requires(self):
        return {"publish": Publish(self.date),
                "realized": {day: RealizedPerformance(day) for day in self.checked_days()}}

    def output(self):
        return DirectoryTarget(config.dataset_path("monitoring/nights", self.date))

    def run(self):
        from nightshift.report import render_history

        cfg, gate = monitor_settings(), config.validate()
        history = collect_history()
        page = config.path("reports", HISTORY_FILE)
        fs.write_bytes(page, render_history(history, gate.psi_warn, gate.psi_fail).encode())
        marker = sql.published_days(self.input()["publish"].url, self.date, self.date).get(self.date)
        metrics_path = cfg.metrics_path()
        write_metrics(metrics_path, self.date, marker, history, cfg.lookback_days)
        checked = {day.isoformat(): (read_performance(day) or {}).get("verdict") for day in self.checked_days()}
        night = {"date": self.date.isoformat(), "realized_checked": checked,
                 "degraded": sorted(day for day, verdict in checked.items() if verdict == "degraded"),
                 "history": page, "metrics": metrics_path, "scored_days": len(history),
                 "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        with self.output().temporary_path() as tmp:
            fs.write_bytes(fs.join(tmp, NIGHT_FILE), json.dumps(night, indent=2).encode())


def summary_lines(date: dt.date) -> list[str]:
    """What a person reads after a night: realized performance of the published days checked, page and metrics."""
    cfg = config.monitor()
    first = date - dt.timedelta(days=cfg.lookback_days)
    measured = [(first + dt.timedelta(days=k), read_performance(first + dt.timedelta(days=k)))
                for k in range(cfg.lookback_days)]
    measured = [(day, p) for day, p in measured if p]
    degraded = sum(1 for _, p in measured if p["verdict"] == "degraded")
    lines = [f"  monitoring: realized performance of {len(measured)} published day(s) of the last "
             f"{cfg.lookback_days} days" + (f", {degraded} degraded" if degraded else "")]
    for day, p in measured[-5:]:
        auc = "n/a" if p.get("auc") is None else f"{p['auc']:.3f}"
        expected = "n/a" if p.get("expected_auc") is None else f"{p['expected_auc']:.3f}"
        brier = "n/a" if p.get("brier") is None else f"{p['brier']:.4f}"
        lines.append(f"    {day}  model {p['model_version']}  realized AUC {auc} (holdout {expected}), "
                     f"Brier {brier}, {p['rows']} rows: {p['verdict']}")
    page = config.path("reports", HISTORY_FILE)
    lines.append(f"  history:    {page}" + ("" if fs.is_file(page) else " (not written yet)"))
    lines.append(f"  metrics:    {cfg.metrics_path()}")
    return lines

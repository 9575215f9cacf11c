"""The gate on a scored night: accept, reject (nothing published, production keeps the day before), approve."""
import datetime as dt
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import sqlalchemy as sa

from targets.directory import ParquetTarget
from targets.sql import column_summary
from tasks import DailyScoring, Publish, TrainModel, ValidatePredictions, config
from tasks.errors import ApprovalError, PredictionsRejected
from tasks.validate import approve
from tests.conftest import (DRIFT_DATE, REPO, SCORE_DATE, TEST_CONFIG, add_drifted_day, build, families,
                            require_service)


def next_day_from(root, transform) -> None:
    """DRIFT_DATE made from SCORE_DATE's outputs, its scores passed through `transform` (no Spark)."""
    for kind in ("features/table", "features/clients", "quarantine/clients"):
        shutil.copytree(root / kind / f"date={SCORE_DATE}", root / kind / f"date={DRIFT_DATE}")
    frame = ParquetTarget(config.dataset_path("predictions", SCORE_DATE)).read_pandas()
    frame["score"] = transform(frame["score"].to_numpy())
    ParquetTarget(config.dataset_path("predictions", DRIFT_DATE)).write_pandas(frame)


@pytest.fixture
def next_day(scored_root, overlay):
    # Weekly retrain: DRIFT_DATE (a Tuesday) is scored by the Monday model SCORE_DATE already trained.
    overlay.set("model", "retrain", "weekly")
    return scored_root


def report(date=DRIFT_DATE) -> dict:
    return json.loads(ValidatePredictions(date=date).output().read_file("validation.json"))


def production(url: str) -> dict:
    with sa.create_engine(url).connect() as conn:
        latest = conn.execute(sa.text("SELECT score_date, COUNT(*) FROM predictions_latest GROUP BY score_date")).fetchall()
        log = conn.execute(sa.text("SELECT score_date, rows, verdict, approved_by, note FROM publish_log "
                                   "ORDER BY score_date")).fetchall()
    return {"latest": [(str(d), n) for d, n in latest], "log": [tuple(map(str, row)) for row in log]}


def test_a_steady_next_day_is_accepted_against_the_last_published_day(next_day):
    next_day_from(next_day, lambda s: s)
    result = build(DailyScoring(date=DRIFT_DATE))
    assert not result["failed"]
    got = report()
    assert got["verdict"] == "accepted" and got["date"] == DRIFT_DATE.isoformat()
    checks = {c["name"]: c for c in got["checks"]}
    assert set(checks) == {"schema", "row_count", "duplicate_client_ids", "missing_or_non_finite_scores",
                           "scores_outside_0_1", "psi", "mean_score_shift", "quarantine_rate"}
    assert all({"measured", "threshold", "verdict"} <= set(c) for c in checks.values())
    assert checks["mean_score_shift"]["measured"] == pytest.approx(0.0, abs=1e-9)
    assert checks["mean_score_shift"]["threshold"] == 0.25
    assert got["psi"] == checks["psi"]["measured"]
    assert got["previous"]["date"] == SCORE_DATE.isoformat() and got["previous"]["rows"] == got["rows"]
    assert got["previous"]["counts"] == got["histogram"], "same scores, same bins"
    state = production(config.publish().database_url())
    assert state["latest"] == [(DRIFT_DATE.isoformat(), got["rows"])]
    assert state["log"][-1][2:] == ("accepted", "None", "None")


def test_the_last_published_days_figures_are_the_databases_whether_publish_stored_them_or_not(next_day):
    next_day_from(next_day, lambda s: s)
    url = config.publish().database_url()
    edges = TrainModel(date=SCORE_DATE).output().metadata()["reference_histogram"]["edges"]
    in_database = column_summary(url, "predictions", "score", SCORE_DATE, edges)
    with sa.create_engine(url).connect() as conn:
        stored = json.loads(conn.execute(sa.text("SELECT score_summary FROM publish_log WHERE score_date = :d"),
                                         {"d": SCORE_DATE}).scalar())
    assert stored["edges"] == edges and stored["counts"] == in_database["counts"]
    assert stored["rows"] == in_database["rows"] and stored["mean"] == pytest.approx(in_database["mean"], rel=1e-12)
    validate = ValidatePredictions(date=DRIFT_DATE)
    for summary in ("stored by Publish", "none, as in a day an older release published"):
        if summary.startswith("none"):
            with sa.create_engine(url).begin() as conn:
                conn.execute(sa.text("UPDATE publish_log SET score_summary = NULL"))
            assert validate.output().remove()
        assert not build(validate)["failed"], summary
        previous = report()["previous"]
        assert previous["date"] == SCORE_DATE.isoformat(), summary
        assert (previous["rows"], previous["counts"]) == (in_database["rows"], in_database["counts"]), summary
        assert previous["mean"] == pytest.approx(in_database["mean"], rel=1e-12), summary


def test_a_shifted_batch_is_rejected_and_production_keeps_the_previous_day(next_day):
    next_day_from(next_day, lambda s: np.clip(s * 3.0, 0, 1))
    url = config.publish().database_url()
    before = production(url)
    result = build(DailyScoring(date=DRIFT_DATE))
    assert families(result["failed"]) == ["ValidatePredictions"]
    assert "Publish" not in families(result["completed"])
    assert production(url) == before
    assert not ValidatePredictions(date=DRIFT_DATE).complete()
    got = report()
    assert got["verdict"] == "rejected"
    assert {"psi", "mean_score_shift"} <= set(got["failed"])
    assert os.path.exists(ValidatePredictions(date=DRIFT_DATE).output().file("report.html"))

    with pytest.raises(PredictionsRejected) as raised:
        ValidatePredictions(date=DRIFT_DATE).run()
    message = str(raised.value)
    assert f"predictions for {DRIFT_DATE} rejected" in message
    assert "psi = " in message and "(threshold warn 0.1, fail 0.25)" in message
    assert "mean_score_shift = " in message and f"published for {SCORE_DATE}" in message
    assert message.endswith(f"report {next_day}/reports/date={DRIFT_DATE}/report.html")


def test_an_approved_batch_is_published_and_the_approval_is_recorded(next_day):
    next_day_from(next_day, lambda s: np.clip(s * 3.0, 0, 1))
    with pytest.raises(ApprovalError, match="no validation report"):
        approve(DRIFT_DATE, "known campaign", "alice")
    assert build(DailyScoring(date=DRIFT_DATE))["failed"]
    approve(DRIFT_DATE, "marketing campaign doubled the young segment", "alice")
    result = build(DailyScoring(date=DRIFT_DATE))
    assert not result["failed"]
    assert families(result["completed"]) == ["DailyScoring", "MonitorModel", "Publish", "ValidatePredictions"]
    got = report()
    assert got["verdict"] == "approved"
    assert got["approval"]["by"] == "alice" and "campaign" in got["approval"]["reason"]
    page = ValidatePredictions(date=DRIFT_DATE).output().read_file("report.html").decode()
    assert "Approved by alice" in page
    state = production(config.publish().database_url())
    assert state["latest"] == [(DRIFT_DATE.isoformat(), got["rows"])]
    assert state["log"][-1][2:] == ("approved", "alice", "marketing campaign doubled the young segment")
    with pytest.raises(ApprovalError, match="was approved, not rejected"):
        approve(DRIFT_DATE, "again", "bob")


def test_bin_approve_refuses_a_day_that_was_not_rejected(scored_root, tmp_path):
    cfg = tmp_path / "overlay.cfg"
    cfg.write_text(f"[paths]\nroot = {scored_root}\n")
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}
    run = subprocess.run([str(REPO / "bin" / "approve"), "--date", SCORE_DATE.isoformat(), "--reason", "why not"],
                         cwd=REPO, env=env, capture_output=True, text=True)
    assert run.returncode == 1
    assert f"the batch of {SCORE_DATE} was accepted, not rejected" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (scored_root / "reports" / f"date={SCORE_DATE}" / "approval.json").exists()


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    require_service("a headless browser (Debian package `chromium`)", "none on PATH")


def test_report_page_shows_the_check_table_and_the_histogram_in_a_browser(next_day, tmp_path):
    from PIL import Image

    next_day_from(next_day, lambda s: np.clip(s * 3.0, 0, 1))
    build(DailyScoring(date=DRIFT_DATE))
    page = ValidatePredictions(date=DRIFT_DATE).output().file("report.html")
    text = open(page, encoding="utf-8").read()
    assert "http://" not in text and "https://" not in text and "<script" not in text, "must work offline"
    shot = tmp_path / "report.png"
    run = subprocess.run([find_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,900",
                          f"--screenshot={shot}", f"file://{page}"], capture_output=True, text=True, timeout=120)
    assert shot.exists(), run.stderr[-2000:]
    pixels = {rgb for _, rgb in Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 24)}
    for colour in ("#d9622b", "#7f9fb0", "#9c9c9c"):  # today, the model's reference, the last published day
        rgb = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
        assert rgb in pixels, f"no {colour} bars drawn"


def luigi_cli(date, cfg) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "luigi", "--module", "tasks", "DailyScoring", "--date", date.isoformat(),
                           "--local-scheduler"], cwd=REPO, env={**os.environ, "LUIGI_CONFIG_PATH": str(cfg)},
                          capture_output=True, text=True, timeout=900)


def test_a_drifted_day_stops_at_the_gate_with_exit_30_and_a_mail_then_approval_publishes_it(
        scored_root, drifted_drop, mailbox, tmp_path):
    add_drifted_day(scored_root, drifted_drop)
    url = config.publish().database_url()
    sections = {**TEST_CONFIG, "model": {**TEST_CONFIG["model"], "retrain": "weekly"}}
    sections["paths"] = {"root": scored_root}
    sections["publish"] = {"url": url}
    sections["email"] = {"receiver": "oncall@example.com", "force_send": "true"}
    sections["smtp"] = {"host": "127.0.0.1", "port": mailbox.port}
    cfg = tmp_path / "overlay.cfg"
    cfg.write_text("".join(f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())
                           for name, values in sections.items()))
    before = production(url)

    first = luigi_cli(DRIFT_DATE, cfg)
    assert first.returncode == 30, first.stderr[-3000:]
    assert production(url) == before, "production keeps the previous day"
    assert before["latest"][0][0] == SCORE_DATE.isoformat()
    got = report()
    assert got["verdict"] == "rejected" and "psi" in got["failed"] and got["psi"] > 0.25
    page = ValidatePredictions(date=DRIFT_DATE).output().read_file("report.html").decode()
    assert "<svg" in page and f"last published day {SCORE_DATE}" in page
    assert [m["Subject"] for m in mailbox.messages] == [f"nightshift {DRIFT_DATE}: batch rejected"]
    mail = mailbox.messages[0].get_payload()[0].get_payload(decode=True).decode()
    assert "  - psi = " in mail
    # The drop moved salaries and ages (and the risky spend of its last day): those lead the feature drift.
    ranked = list(got["feature_psi"])
    assert set(ranked[:2]) == {"salary_rub_month", "age"}, got["feature_psi"]
    assert got["feature_psi"]["salary_rub_month"] > 0.25 and got["feature_psi"]["is_male"] < 0.05
    assert list(got["feature_psi"].values()) == sorted(got["feature_psi"].values(), reverse=True)
    assert "Most drifted features (PSI against the model's training data):\n" + "".join(
        f"  - {name}: PSI {psi:.4f}\n" for name, psi in list(got["feature_psi"].items())[:3]) in mail
    assert page.index(f"<td>{ranked[0]}</td>") < page.index(f"<td>{ranked[1]}</td>") < page.index(f"<td>{ranked[-1]}</td>")

    approved = subprocess.run([str(REPO / "bin" / "approve"), "--date", DRIFT_DATE.isoformat(), "--reason",
                               "salary reform, checked with risk", "--by", "carol"], cwd=REPO,
                              env={**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}, capture_output=True, text=True)
    assert approved.returncode == 0, approved.stderr
    second = luigi_cli(DRIFT_DATE, cfg)
    assert second.returncode == 0, second.stderr[-3000:]
    assert report()["verdict"] == "approved"
    after = production(url)
    assert after["latest"] == [(DRIFT_DATE.isoformat(), got["rows"])]
    assert after["log"][-1][2:] == ("approved", "carol", "salary reform, checked with risk")
    assert len(mailbox.messages) == 1, "no mail for a successful run"


def test_the_report_shows_the_volume_of_every_raw_drop_of_the_night(scored_root):
    report_dir = ValidatePredictions(date=SCORE_DATE).output()
    report = json.loads(report_dir.read_file("validation.json"))
    volumes = {v["drop"].rsplit("/raw/", 1)[1]: v for v in report["volumes"]}
    snapshot = SCORE_DATE - dt.timedelta(days=1)
    assert set(volumes) == {f"clients/dt={snapshot}"} | {f"transactions/dt={snapshot - dt.timedelta(days=k)}"
                                                          for k in range(7)}
    clients = volumes[f"clients/dt={snapshot}"]
    lines = (scored_root / "raw" / "clients" / f"dt={snapshot}" / "clients.csv").read_text().count("\n") - 1
    assert clients["measured"] == lines and clients["verdict"] == "pass" and 0.9 < clients["ratio"] < 1.1
    assert clients["drops"] == 7 and clients["threshold"] == {"min_snapshot_ratio": 0.9, "max_volume_ratio": 2.0}
    page = report_dir.read_file("report.html").decode()
    assert f"Raw volumes: clients/dt={snapshot}: {lines} rows (" in page


def test_the_gate_fails_on_the_worst_quarantined_partition_when_the_threshold_was_tightened(next_day, overlay):
    """Partitions written under a looser max_quarantine_rate are gated again, each on its own share of rows."""
    from tasks.features import quarantine_counts

    next_day_from(next_day, lambda s: s)
    partitions = [p for p in quarantine_counts(DRIFT_DATE)["partitions"] if p["rows"]]
    worst = max(partitions, key=lambda p: p["rate"])
    pooled = sum(p["rejected"] for p in partitions) / sum(p["rows"] for p in partitions)
    assert worst["rate"] > 0
    overlay.set("validate", "max_quarantine_rate", (worst["rate"] + pooled) / 2 if len(partitions) > 1
                else worst["rate"] / 2)
    result = build(DailyScoring(date=DRIFT_DATE))
    assert families(result["failed"]) == ["ValidatePredictions"]
    check = {c["name"]: c for c in report()["checks"]}["quarantine_rate"]
    assert check["verdict"] == "fail" and report()["failed"] == ["quarantine_rate"]
    assert check["measured"] == pytest.approx(worst["rate"], abs=1e-6)
    assert f"{worst['rejected']} of {worst['rows']} raw rows quarantined in {worst['path']}" in check["detail"]

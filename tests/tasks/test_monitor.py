"""Monitoring on real nights: a past published day measured against its labels, the alert, the page, the metrics."""
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time

import pandas as pd
import pytest
import sqlalchemy as sa

from nightshift.errors import ConfigurationError, SchemaError
from tasks import DailyScoring, MonitorModel, RealizedPerformance, config
from tests.conftest import (REPO, SCORE_DATE, TEST_CONFIG, Mailbox, build, families, make_sample_data,
                            overlay_on)
from tests.tasks.test_validate import find_chromium

# The labels of PAST (label lag 2 days) have landed by SCORE_DATE, and follow another relation than the one
# the model learnt: the sample's --concept-drift-from. 15 days give the training snapshots of PAST full 7-day windows.
PAST = dt.date(2026, 2, 27)
CLIENTS = 3000
SECTIONS = {**TEST_CONFIG, "model": {**TEST_CONFIG["model"], "retrain": "daily"}}


def write_cfg(path, root, **extra) -> None:
    sections = {**SECTIONS, "paths": {"root": root}, "publish": {"url": f"sqlite:///{root}/nightshift.db"}, **extra}
    path.write_text("".join(f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())
                            for name, values in sections.items()))


def luigi_cli(date: dt.date, cfg) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "luigi", "--module", "tasks", "DailyScoring", "--date",
                           date.isoformat(), "--local-scheduler"], cwd=REPO,
                          env={**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}, capture_output=True, text=True,
                          timeout=1200)


@pytest.fixture(scope="module")
def drifted_nights(tmp_path_factory):
    """PAST scored and published in-process, then SCORE_DATE by the luigi command with a real SMTP server.

    Returns (root, the command's results, the mails received); never modify the root.
    """
    root = tmp_path_factory.mktemp("concept")
    make_sample_data(root, SCORE_DATE - dt.timedelta(days=1), days=15, clients=CLIENTS, concept_drift_from=PAST)
    overlay = overlay_on(root, SECTIONS)
    try:
        result = build(DailyScoring(date=PAST))
        assert not result["failed"], result["failed"]
    finally:
        overlay.restore()
    box = Mailbox()
    try:
        cfg = root.parent / f"{root.name}.cfg"
        write_cfg(cfg, root, email={"receiver": "oncall@example.com", "force_send": "true"},
                  smtp={"host": "127.0.0.1", "port": box.port})
        night = luigi_cli(SCORE_DATE, cfg)
        started = time.monotonic()
        rerun = luigi_cli(SCORE_DATE, cfg)
        rerun_seconds = time.monotonic() - started
    finally:
        box.stop()
    return {"root": root, "night": night, "rerun": rerun, "rerun_seconds": rerun_seconds, "mails": box.messages}


@pytest.fixture
def monitored(drifted_nights, overlay):
    """The drifted nights' root as this test's configuration (read only)."""
    for section, values in SECTIONS.items():
        for key, value in values.items():
            overlay.set(section, key, value)
    overlay.set("paths", "root", str(drifted_nights["root"]))
    overlay.set("publish", "url", f"sqlite:///{drifted_nights['root']}/nightshift.db")
    return drifted_nights


def performance(day=PAST) -> dict:
    return json.loads(RealizedPerformance(date=day).output().read_file("performance.json"))


def test_realized_auc_and_brier_equal_sklearn_on_the_published_rows_joined_with_the_labels(monitored):
    from sklearn.metrics import brier_score_loss, roc_auc_score

    with sa.create_engine(config.publish().database_url()).connect() as conn:
        published = pd.DataFrame(conn.execute(sa.text("SELECT client_id, score FROM predictions WHERE score_date = :d"),
                                              {"d": PAST}).fetchall(), columns=["client_id", "score"])
        version = conn.execute(sa.text("SELECT model_version FROM publish_log WHERE score_date = :d"),
                               {"d": PAST}).scalar()
    labels = pd.read_csv(monitored["root"] / "raw" / "labels" / f"dt={PAST}" / "labels.csv")
    joined = published.merge(labels, on="client_id")
    got = performance()
    assert got["date"] == PAST.isoformat() and got["model_version"] == version
    assert got["rows"] == len(joined) > 0.9 * CLIENTS
    assert got["auc"] == pytest.approx(roc_auc_score(joined["defaulted"], joined["score"]), abs=1e-12)
    assert got["brier"] == pytest.approx(brier_score_loss(joined["defaulted"], joined["score"]), abs=1e-12)
    assert got["base_rate"] == pytest.approx(joined["defaulted"].mean())
    meta = json.loads((monitored["root"] / "models" / version[:10] / "metadata.json").read_text())
    assert got["expected_auc"] == meta["holdout_auc"]


def test_a_degraded_day_is_alerted_once_and_the_night_still_publishes(monitored):
    night, rerun = monitored["night"], monitored["rerun"]
    assert night.returncode == 0, night.stderr[-3000:]
    got = performance()
    assert got["verdict"] == "degraded", got
    assert got["auc"] < got["expected_auc"] - 0.05
    with sa.create_engine(config.publish().database_url()).connect() as conn:
        days = [str(d) for d, in conn.execute(sa.text("SELECT score_date FROM publish_log ORDER BY score_date"))]
    assert days == [PAST.isoformat(), SCORE_DATE.isoformat()], "tonight was published all the same"
    assert [m["Subject"] for m in monitored["mails"]] == [
        f"nightshift {PAST}: model {got['model_version']} degraded (realized AUC {got['auc']:.3f}, "
        f"expected {got['expected_auc']:.3f})"]
    text = monitored["mails"][0].get_payload()[0].get_payload(decode=True).decode()
    assert f"realized AUC {got['auc']:.4f}, expected (holdout) AUC {got['expected_auc']:.4f}" in text
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "SparkContext" not in rerun.stderr and "This progress looks :)" in rerun.stderr
    night_record = json.loads(MonitorModel(date=SCORE_DATE).output().read_file("night.json"))
    assert night_record["degraded"] == [PAST.isoformat()]


def test_monitor_model_checks_only_published_days_whose_labels_landed(monitored, overlay):
    labels = monitored["root"] / "raw" / "labels"
    assert len([p for p in labels.iterdir() if (p / "_SUCCESS").exists()]) > 3, "labelled days never published"
    assert list(MonitorModel(date=SCORE_DATE).requires()["realized"]) == [PAST]
    # SCORE_DATE is published but its labels have not landed; the unpublished labelled days are not looked at.
    assert list(MonitorModel(date=SCORE_DATE + dt.timedelta(days=1)).requires()["realized"]) == [PAST]
    overlay.set("monitor", "lookback_days", "4")
    assert list(MonitorModel(date=SCORE_DATE).requires()["realized"]) == [PAST]
    overlay.set("monitor", "lookback_days", "2")
    assert MonitorModel(date=SCORE_DATE).requires()["realized"] == {}
    overlay.set("monitor", "lookback_days", "0")
    with pytest.raises(ConfigurationError, match=r"\[monitor\] lookback_days = 0: must be at least 1"):
        MonitorModel(date=SCORE_DATE).requires()


def test_a_malformed_label_drop_fails_naming_the_file(monitored, root, overlay):
    shutil.rmtree(root)
    shutil.copytree(monitored["root"], root)
    overlay.set("paths", "root", str(root))
    overlay.set("publish", "url", f"sqlite:///{root}/nightshift.db")
    assert RealizedPerformance(date=PAST).output().remove()
    labels = root / "raw" / "labels" / f"dt={PAST}" / "labels.csv"
    lines = labels.read_text().splitlines()
    lines[1] = lines[1].split(",")[0] + ",yes"
    lines[5] = lines[5].split(",")[0] + ", 1.0 "  # a spelling of 1: accepted
    labels.write_text("\n".join(lines) + "\n")
    result = build(RealizedPerformance(date=PAST))
    assert families(result["failed"]) == ["RealizedPerformance"]
    assert not RealizedPerformance(date=PAST).complete()
    with pytest.raises(SchemaError) as raised:
        RealizedPerformance(date=PAST).run()
    assert str(raised.value).startswith(f"{labels}: 1 of {len(lines) - 1} row(s)")
    assert "defaulted='yes'" in str(raised.value)


def test_history_page_lists_every_scored_day_and_draws_its_charts_in_a_browser(monitored, tmp_path):
    from PIL import Image

    page = monitored["root"] / "reports" / "index.html"
    text = page.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text and "<script" not in text, "must work offline"
    for day in (PAST, SCORE_DATE):
        assert f"<a href='date={day}/report.html'>{day}</a>" in text
        assert (page.parent / f"date={day}" / "report.html").exists()
    assert f"{performance()['auc']:.4f} <span class='verdict-degraded'>degraded</span>" in text
    assert text.count("<tr class='day'") == 2
    shot = tmp_path / "history.png"
    run = subprocess.run([find_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          f"--user-data-dir={tmp_path / 'profile'}", "--window-size=900,1100",
                          f"--screenshot={shot}", f"file://{page}"], capture_output=True, text=True, timeout=120)
    assert shot.exists(), run.stderr[-2000:]
    if os.environ.get("NIGHTSHIFT_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["NIGHTSHIFT_KEEP_SCREENSHOT"])
    pixels = {rgb for _, rgb in Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 24)}
    for colour in ("#d9622b", "#2b6cd9", "#2b9c5a"):  # PSI, mean score, realized AUC
        rgb = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
        assert rgb in pixels, f"no {colour} line drawn"


def test_the_metrics_file_parses_with_prometheus_client(monitored):
    from prometheus_client.parser import text_string_to_metric_families

    path = monitored["root"] / "metrics" / "nightshift.prom"
    samples = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    with sa.create_engine(config.publish().database_url()).connect() as conn:
        rows = conn.execute(sa.text("SELECT rows FROM publish_log WHERE score_date = :d"), {"d": SCORE_DATE}).scalar()
    report = json.loads((monitored["root"] / "reports" / f"date={SCORE_DATE}" / "validation.json").read_text())
    assert [(s.labels, s.value) for s in samples["nightshift_rows_published"]] == [
        ({"score_date": SCORE_DATE.isoformat()}, rows)]
    assert samples["nightshift_psi"][0].value == pytest.approx(report["psi"])
    realized = samples["nightshift_realized_auc"]
    assert [s.labels["score_date"] for s in realized] == [PAST.isoformat()]
    assert realized[0].value == pytest.approx(performance()["auc"])
    assert samples["nightshift_degraded_days"][0].value == 1
    last = samples["nightshift_last_success_timestamp_seconds"][0].value
    assert time.time() - 3600 < last <= time.time()
    assert set(report["feature_psi"]) == {s.labels["feature"] for s in samples["nightshift_feature_psi"]}

"""Alerts through Luigi's [email]/[smtp] to a real SMTP server, and the optional webhook."""
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import luigi
import numpy as np
import pytest

from tasks import DailyScoring, ValidatePredictions
from tests.conftest import DRIFT_DATE, SCORE_DATE, build, families
from tests.tasks.test_validate import next_day_from


def body(message) -> str:
    part = message.get_payload()[0] if message.is_multipart() else message
    return part.get_payload(decode=True).decode()


def test_a_rejected_batch_sends_one_mail_with_date_verdict_failed_checks_and_report(scored_root, overlay, mailbox):
    overlay.set("model", "retrain", "weekly")
    next_day_from(scored_root, lambda s: np.clip(s * 3.0, 0, 1))
    result = build(DailyScoring(date=DRIFT_DATE))
    assert families(result["failed"]) == ["ValidatePredictions"]
    assert len(mailbox.messages) == 1
    mail = mailbox.messages[0]
    assert mail["Subject"] == f"nightshift {DRIFT_DATE}: batch rejected"
    assert mail["To"] == "oncall@example.com"
    text = body(mail)
    assert "Failed checks (2):" in text
    assert "  - psi = " in text and "  - mean_score_shift = " in text
    assert f"production keeps {SCORE_DATE}" in text
    report = ValidatePredictions(date=DRIFT_DATE).output()
    assert f"Report: {report.file('report.html')}" in text
    assert f"bin/approve --date {DRIFT_DATE}" in text


class Broken(luigi.Task):
    def run(self):
        raise RuntimeError("disk full while writing")

    def complete(self):
        return False


def test_any_other_failed_task_sends_luigi_s_own_mail_once(root, mailbox):
    result = build(Broken())
    assert families(result["failed"]) == ["Broken"]
    assert len(mailbox.messages) == 1
    assert mailbox.messages[0]["Subject"].startswith("Luigi: Broken() FAILED")
    assert "RuntimeError: disk full while writing" in body(mailbox.messages[0])


def test_the_webhook_gets_a_slack_style_json_post(root, overlay):
    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append((self.headers["Content-Type"], json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        overlay.set("alerts", "webhook_url", f"http://127.0.0.1:{server.server_port}/hook")
        result = build(Broken())
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert families(result["failed"]) == ["Broken"]
    assert len(received) == 1
    content_type, payload = received[0]
    assert content_type == "application/json"
    assert payload["text"].startswith("*Luigi: Broken() FAILED") and "disk full while writing" in payload["text"]


def test_an_unreachable_webhook_or_mail_server_does_not_hide_the_failure(root, overlay, caplog):
    """Luigi's trigger_event swallows what a handler raises: what counts is the log saying the alert was lost."""
    overlay.set("alerts", "webhook_url", "http://127.0.0.1:9/nothing-listens-here")
    overlay.set("email", "receiver", "oncall@example.com")
    overlay.set("email", "force_send", "true")
    overlay.set("smtp", "host", "127.0.0.1")
    overlay.set("smtp", "port", "9")
    result = build(Broken())
    assert families(result["failed"]) == ["Broken"]
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(m.startswith("alert mail 'Luigi: Broken() FAILED") and "not sent: " in m for m in errors), errors
    assert any(m.startswith("alert webhook http://127.0.0.1:9/nothing-listens-here failed: ") for m in errors), errors


def run_night(date) -> int:
    """The operator's command in this process: `luigi --module tasks DailyScoring --date D`; its exit code.

    --no-lock: Luigi's pid lock would take this same process, still alive after the first run, for another run.
    """
    from luigi.retcodes import run_with_retcodes

    with pytest.raises(SystemExit) as done:
        run_with_retcodes(["--module", "tasks", "DailyScoring", "--date", str(date), "--local-scheduler", "--no-lock"])
    return done.value.code


def test_a_rejected_batch_with_the_mail_server_down_keeps_its_verdict_and_exit_code_and_logs_the_lost_alert(
        scored_root, overlay, mailbox, caplog):
    overlay.set("model", "retrain", "weekly")
    next_day_from(scored_root, lambda s: np.clip(s * 3.0, 0, 1))
    with_mail = run_night(DRIFT_DATE)
    assert len(mailbox.messages) == 1
    assert not any("not sent" in r.getMessage() for r in caplog.records)

    mailbox.stop()  # the port is closed now: connections are refused
    caplog.clear()
    without_mail = run_night(DRIFT_DATE)
    assert with_mail == without_mail == 30  # [retcode] task_failed
    assert len(mailbox.messages) == 1, "no second mail arrived"
    report = json.loads(ValidatePredictions(date=DRIFT_DATE).output().read_file("validation.json"))
    assert report["verdict"] == "rejected"
    lost = [r.getMessage() for r in caplog.records if "not sent" in r.getMessage()]
    assert lost and lost[0].startswith(f"alert mail 'nightshift {DRIFT_DATE}: batch rejected' not sent: "), lost

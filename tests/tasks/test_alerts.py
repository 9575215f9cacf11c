"""Alerts through Luigi's [email]/[smtp] to a real SMTP server, and the optional webhook."""
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import luigi
import numpy as np

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


def test_an_unreachable_webhook_or_mail_server_does_not_hide_the_failure(root, overlay):
    overlay.set("alerts", "webhook_url", "http://127.0.0.1:9/nothing-listens-here")
    overlay.set("email", "receiver", "oncall@example.com")
    overlay.set("email", "force_send", "true")
    overlay.set("smtp", "host", "127.0.0.1")
    overlay.set("smtp", "port", "9")
    result = build(Broken())
    assert families(result["failed"]) == ["Broken"]

"""Alerts: a rejected batch or a failed task reaches people through Luigi's [email]/[smtp] and an optional webhook.

Luigi's worker would send its own generic mail for every failure ("Luigi: X FAILED"), which for a
rejected batch would be a second mail without the verdict in its subject. So luigi.cfg turns that
off (`[worker] send_failure_email = false`) and the handlers below send exactly one mail per failure:
a tailored one for a rejected batch, Luigi's usual one for anything else (run() raised, the task
process died or timed out, requires() raised). Luigi still mails framework errors itself.
"""
import json
import logging
import socket
import subprocess
import sys
import traceback
import urllib.request

import luigi
from luigi import notifications

from nightshift.checks import describe
from nightshift.schema import HTML_FILE, REPORT_FILE
from tasks import config
from tasks.errors import NightshiftError, PredictionsRejected

logger = logging.getLogger("luigi-interface")


def rejection_mail(report: dict, report_uri: str, html_uri: str) -> tuple[str, str]:
    """Subject and body of the one mail a rejected batch sends."""
    failed = [c for c in report["checks"] if c["verdict"] == "fail"]
    previous = (report.get("previous") or {}).get("date")
    keeps = f"production keeps {previous}" if previous else "production keeps what it had"
    lines = [
        f"The validation gate {report['verdict']} the predictions for {report['date']} "
        f"(model {report['model_version']}, {report['rows']} rows): nothing was published, {keeps}.",
        "",
        f"Failed checks ({len(failed)}):",
        *[f"  - {describe(c)}" for c in failed],
        "",
        *drift_lines(report),
        f"Report: {html_uri}",
        f"Checks: {report_uri}",
        "",
        "If the batch is right after all, a person approves it and the next run publishes it:",
        f"  bin/approve --date {report['date']} --reason '...'",
    ]
    return f"nightshift {report['date']}: batch {report['verdict']}", "\n".join(lines)


def drift_lines(report: dict, top: int = 3) -> list[str]:
    """The features that drifted most against the model's training data, for a person deciding what changed."""
    ranked = list((report.get("feature_psi") or {}).items())[:top]
    if not ranked:
        note = report.get("feature_psi_note")
        return [f"Feature drift: {note}", ""] if note else []
    return ["Most drifted features (PSI against the model's training data):",
            *[f"  - {name}: PSI {psi:.4f}" for name, psi in ranked], ""]


def degraded_mail(performance: dict, uri: str) -> tuple[str, str]:
    """Subject and body of the one alert a degraded day sends: the day, the model, realized and expected AUC."""
    day, version = performance["date"], performance["model_version"]
    expected = performance.get("expected_auc")
    expected_text = "unknown" if expected is None else f"{expected:.4f}"
    lines = [
        f"The scores published for {day} by model {version} did worse than the model promised, now that "
        f"their outcomes have landed: realized AUC {performance['auc']:.4f}, expected (holdout) AUC {expected_text}.",
        "",
        *[f"  - {reason}" for reason in performance.get("reasons", [])],
        "",
        f"Rows matched: {performance['rows']}, default rate {performance['base_rate']:.4f}, "
        f"Brier {performance['brier']:.4f}.",
        f"Details: {uri}",
        "",
        "Nothing was held back: this is an alert, not a failure. Consider retraining on recent labels",
        "(bin/invalidate TrainModel --date <model date> --downstream) and see reports/index.html for the trend.",
    ]
    short = "unknown" if expected is None else f"{expected:.3f}"
    return f"nightshift {day}: model {version} degraded (realized AUC {performance['auc']:.3f}, " \
           f"expected {short})", "\n".join(lines)


def failure_mail(task: luigi.Task, explanation: str, headline: str) -> tuple[str, str]:
    """Luigi's own subject and body for a failed task."""
    subject = f"Luigi: {task} FAILED. Host: {socket.gethostname()}"
    command = subprocess.list2cmdline(sys.argv)
    return subject, notifications.format_task_error(headline, task, command, explanation)


def post_webhook(url: str, subject: str, body: str) -> None:
    """A Slack-compatible JSON POST ({"text": ...}); a failing webhook is logged, never raised."""
    request = urllib.request.Request(url, data=json.dumps({"text": f"*{subject}*\n{body}"}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
    except OSError as exc:
        logger.error("alert webhook %s failed: %s", url, exc)


class _MailErrors(logging.Handler):
    """Collects the errors Luigi's mail senders log instead of raising (an SMTP server that refuses connections)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.pathname == notifications.__file__:
            self.messages.append(record.getMessage())


def send_alert(subject: str, body: str) -> None:
    """To `[email] receiver` via Luigi's notifications (honouring its settings), and to `[alerts] webhook_url`.

    A mail that cannot be sent is logged as `alert mail '<subject>' not sent: <why>`, and the failure being
    reported stays what it was: the night's verdict and exit code do not depend on the mail server.
    """
    errors = _MailErrors()
    notifications.logger.addHandler(errors)
    try:
        notifications.send_error_email(subject, body)
    except Exception as exc:  # an unreachable mail server must not hide the failure being reported
        errors.messages.append(f"{type(exc).__name__}: {exc}")
    finally:
        notifications.logger.removeHandler(errors)
    if errors.messages:
        logger.error("alert mail %r not sent: %s", subject, "; ".join(errors.messages))
    url = config.alerts().webhook_url
    if url:
        post_webhook(url, subject, body)


@luigi.Task.event_handler(luigi.Event.FAILURE)
def _on_failure(task: luigi.Task, exception: BaseException) -> None:
    if isinstance(exception, PredictionsRejected):
        target = task.output()
        try:
            report = json.loads(target.read_file(REPORT_FILE))
        except OSError:
            report = None
        if report is not None:
            send_alert(*rejection_mail(report, target.file(REPORT_FILE), target.file(HTML_FILE)))
            return
    if isinstance(exception, NightshiftError):
        # Its message names what failed, where, and what to do; a traceback would bury it.
        explanation = f"{type(exception).__name__}: {exception}"
    else:
        explanation = "".join(traceback.format_exception(type(exception), exception, exception.__traceback__))
    send_alert(*failure_mail(task, explanation, "A task failed when running. Most likely run() raised an exception."))


@luigi.Task.event_handler(luigi.Event.PROCESS_FAILURE)
def _on_process_failure(task: luigi.Task, message: str) -> None:
    send_alert(*failure_mail(task, message, "The task's process died."))


@luigi.Task.event_handler(luigi.Event.TIMEOUT)
def _on_timeout(task: luigi.Task, message: str) -> None:
    send_alert(*failure_mail(task, message, "The task timed out and was terminated."))


@luigi.Task.event_handler(luigi.Event.BROKEN_TASK)
def _on_broken_task(task: luigi.Task, exception: BaseException) -> None:
    explanation = "".join(traceback.format_exception(type(exception), exception, exception.__traceback__))
    send_alert(*failure_mail(task, explanation, "Will not run {task} or any dependencies: requires() failed.".format(task=task)))

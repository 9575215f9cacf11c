"""Errors users see: each names what failed, where, how many, the threshold and the measured value.

The error types are the core's (nightshift/errors.py: a model file or an executor may raise them), exported
here with what Luigi needs to show them as one line.
"""
import functools
import inspect
import logging
import os
import re

from nightshift.errors import (  # noqa: F401
    ApprovalError, ConfigurationError, CorruptTargetError, DataQualityError, DiskFullError, FeatureMismatch, ModelIntegrityError, NightshiftError,
    NotEnoughSnapshots, PredictionsRejected, PublishError, SchemaError, ServiceUnavailable, VolumeError,
)


_SPARK_PATH = re.compile(r"(?:[a-zA-Z][a-zA-Z0-9+.-]*:)?/[^\s'\"`,;\]\[()]+")


def _comparable(uri: str) -> str:
    """A URI or path in one spelling: file:///p, file:/p and a relative local path all become /p."""
    from targets import fs

    return os.path.abspath(fs._local_path(uri)) if fs.scheme(uri) in ("", "file") else uri.rstrip("/")


def invalidate_command(reader: "luigi.Task", producer: "luigi.Task") -> str:
    """The bin/invalidate line that deletes `producer`'s output and everything after it in `reader`'s night."""
    date = getattr(reader, "date", None) or getattr(producer, "date", None)
    command = f"bin/invalidate {producer.task_family}"
    if date is not None:
        command += f" --date {date}"
        own = getattr(producer, "date", None)
        if own is not None and own != date:
            command += f" --task-date {own}"
    return command + " --downstream"


def _producer(task, file: str):
    """The upstream task of `task` whose output folder holds `file`, or None."""
    from luigi.task import flatten

    file = _comparable(file)
    for dep in flatten(task.requires()):
        for target in flatten(dep.output()):
            uri = getattr(target, "uri", None) or getattr(target, "path", None)
            if isinstance(uri, str) and file.startswith(_comparable(uri) + "/"):
                return dep
    return None


def _unreadable_input(task, exc: BaseException) -> str | None:
    """The file of one of `task`'s inputs that a Spark/Py4J error names, or None."""
    from luigi.task import flatten

    folders = []
    for target in flatten(task.input()):
        uri = getattr(target, "uri", None)
        if isinstance(uri, str):
            folders.append(_comparable(uri) + "/")
    for candidate in _SPARK_PATH.findall(str(exc)):
        candidate = candidate.rstrip(".")
        local = _comparable(candidate)
        if any(local.startswith(folder) for folder in folders):
            return local
    return None


def _spark_reason(exc: BaseException, file: str) -> str:
    """The deepest 'Caused by:' of a Spark error without the Java class or the file name: why it could not read."""
    causes = [line.split("Caused by: ", 1)[1] for line in str(exc).splitlines() if line.startswith("Caused by: ")]
    text = causes[-1] if causes else str(exc).splitlines()[0]
    text = re.sub(r"^[\w.$]+(Exception|Error): ", "", text)
    for spelling in (f"file://{file}", f"file:{file}", file):
        text = text.replace(spelling, os.path.basename(file))
    return text.strip()[:300]


def explain_unreadable_input(task, exc: BaseException) -> BaseException | None:
    """A CorruptTargetError naming the damaged input file and the bin/invalidate line that rebuilds it, or None.

    pyarrow readers (ParquetTarget) already name the file; a Spark read fails as a Py4J or pyspark error whose
    text holds the file's path among pages of Java stack trace: the path is found there.
    """
    if isinstance(exc, CorruptTargetError):
        if getattr(exc, "explained", False):
            return None
        file, message = exc.file, str(exc)
    elif type(exc).__module__.split(".")[0] in ("py4j", "pyspark"):
        file = _unreadable_input(task, exc)
        if file is None:
            return None
        message = f"{file} is not a readable parquet file ({_spark_reason(exc, file)})"
    else:
        return None
    producer = _producer(task, file) if file else None
    fix = (f"rebuild it with {invalidate_command(task, producer)}" if producer is not None
           else "delete the folder holding it and rerun")
    error = CorruptTargetError(f"{message}; {fix}", file)
    error.explained = True
    return error


def explain_lost_server(task, exc: BaseException) -> BaseException | None:
    """A ServiceUnavailable for a Spark Connect server that went away while `task` ran (gRPC UNAVAILABLE), or None.

    pyspark raises it as a SparkConnectGrpcException holding gRPC's debug text; checked by name, so that this
    module never imports pyspark.
    """
    if type(exc).__name__ != "SparkConnectGrpcException" or "StatusCode.UNAVAILABLE" not in str(exc):
        return None
    address = re.search(r"ipv[46]:((?:[0-9.]+|\[[0-9a-fA-F:]+\]):\d+)", str(exc))
    details = re.search(r'details = "([^"]+)"', str(exc))
    return ServiceUnavailable(
        f"the Spark Connect server{' ' + address.group(1) if address else ''} went away while {task} ran "
        f"({details.group(1) if details else 'unavailable'}); nothing of the task was kept. "
        f"See bin/spark-server status and its log, start it (bin/spark-server start) and rerun: the rerun redoes it"
    )


def explain_failure(task, exc: BaseException) -> BaseException | None:
    """What a user should read instead of `exc`, when there is something better to say; else None."""
    return explain_lost_server(task, exc) or explain_unreadable_input(task, exc)


def _explaining_failures(run):
    if inspect.isgeneratorfunction(run):
        @functools.wraps(run)
        def wrapper(self):
            try:
                return (yield from run(self))
            except Exception as exc:
                error = explain_failure(self, exc)
                if error is None:
                    raise
                raise error from None if isinstance(error, ServiceUnavailable) else exc
    else:
        @functools.wraps(run)
        def wrapper(self):
            try:
                return run(self)
            except Exception as exc:
                error = explain_failure(self, exc)
                if error is None:
                    raise
                raise error from None if isinstance(error, ServiceUnavailable) else exc
    wrapper.explains_failures = True
    return wrapper


class ExplainsFailures:
    """Mixin for a Luigi task: an expected failure (a NightshiftError) is explained by its message alone.

    The message names file, column, counts and thresholds; a traceback would only bury it in the scheduler's
    web view and in alert mails. Unexpected errors keep Luigi's traceback. A damaged file in an input that
    looks complete (pyarrow or Spark cannot read it) fails as CorruptTargetError naming the file and the
    bin/invalidate line that rebuilds it; a Spark Connect server lost mid-task as ServiceUnavailable.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        run = cls.__dict__.get("run")
        if run is not None and not getattr(run, "explains_failures", False):
            cls.run = _explaining_failures(run)

    def on_failure(self, exception):
        if isinstance(exception, NightshiftError):
            return f"{type(exception).__name__}: {exception}"
        return super().on_failure(exception)


def _is_scheduler_gone(error: BaseException | None) -> bool:
    """Luigi's RPCError: luigid stopped answering (checked by name: importing luigi.rpc here costs for nothing)."""
    return type(error).__name__ == "RPCError" and type(error).__module__ == "luigi.rpc"


def scheduler_gone(error: BaseException) -> str:
    """One line for a run whose luigid stopped answering: which scheduler, why, what happened and what to do."""
    url = re.search(r"remote scheduler '([^']+)'", str(error))
    cause = str(getattr(error, "sub_exception", None) or error)
    errno = re.search(r"\[Errno \d+\] [^'\")>]+", cause)
    return (f"the central scheduler {url.group(1) if url else ''} went away while the night ran "
            f"({errno.group(0) if errno else cause[:200]}, {str(error).split(' when ')[0].lower()}); the task that "
            "was running finished or failed on its own and nothing half-written is left. Restart it "
            "(bin/scheduler start) or rerun with the local scheduler: the rerun does what is left")


class _ExpectedFailureLog(logging.Filter):
    """Luigi logs every failed task with its traceback; a NightshiftError's message says it all, so log only that."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if _is_scheduler_gone(error):
            record.msg = scheduler_gone(error).replace("%", "%%")
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        elif isinstance(error, NightshiftError):
            # record.msg is a %-format string: a "%" in the message (a rate) must not be read as a placeholder.
            record.msg = f"{record.msg}: {type(error).__name__}: {str(error).replace('%', '%%')}"
            record.exc_info = None
            record.exc_text = None
        return True


logging.getLogger("luigi-interface").addFilter(_ExpectedFailureLog())

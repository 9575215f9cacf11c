"""Errors users see: each names what failed, where, how many, the threshold and the measured value.

The error types are the core's (nightshift/errors.py: a model file or an executor may raise them), exported
here with what Luigi needs to show them as one line.
"""
import logging

from nightshift.errors import (  # noqa: F401
    ApprovalError, ConfigurationError, CorruptTargetError, DataQualityError, DiskFullError, FeatureMismatch, ModelIntegrityError, NightshiftError,
    NotEnoughSnapshots, PredictionsRejected, PublishError, SchemaError, VolumeError,
)


class ExplainsFailures:
    """Mixin for a Luigi task: an expected failure (a NightshiftError) is explained by its message alone.

    The message names file, column, counts and thresholds; a traceback would only bury it in the scheduler's
    web view and in alert mails. Unexpected errors keep Luigi's traceback.
    """

    def on_failure(self, exception):
        if isinstance(exception, NightshiftError):
            return f"{type(exception).__name__}: {exception}"
        return super().on_failure(exception)


class _ExpectedFailureLog(logging.Filter):
    """Luigi logs every failed task with its traceback; a NightshiftError's message says it all, so log only that."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, NightshiftError):
            # record.msg is a %-format string: a "%" in the message (a rate) must not be read as a placeholder.
            record.msg = f"{record.msg}: {type(error).__name__}: {str(error).replace('%', '%%')}"
            record.exc_info = None
            record.exc_text = None
        return True


logging.getLogger("luigi-interface").addFilter(_ExpectedFailureLog())

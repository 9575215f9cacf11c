"""Errors users see: each names what failed, where, how many, the threshold and the measured value."""
import logging


class NightshiftError(Exception):
    """Base of every error nightshift raises on purpose."""


class ConfigurationError(NightshiftError):
    """A setting is missing or cannot work with the others."""


class SchemaError(NightshiftError):
    """An input lacks a column, has the wrong type, is empty or unreadable."""


class DataQualityError(NightshiftError):
    """Too many raw rows were rejected (quarantined) for the day to be trusted."""


class NotEnoughSnapshots(NightshiftError):
    """Too few labelled snapshots exist to train a model for this date."""


class ModelIntegrityError(NightshiftError):
    """A model file does not match its metadata (tampered or truncated)."""


class FeatureMismatch(NightshiftError):
    """The model's features differ from the feature table's (names or dtypes)."""


class PredictionsRejected(NightshiftError):
    """The validation gate rejected a batch of predictions."""


class ApprovalError(NightshiftError):
    """A person tried to approve a date that has no rejected validation report."""


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

"""Errors users see: each names what failed, where, how many, the threshold and the measured value."""


class NightshiftError(Exception):
    """Base of every error nightshift raises on purpose."""


class ConfigurationError(NightshiftError):
    """A setting is missing, out of range or cannot work with the others."""


class DiskFullError(NightshiftError, OSError):
    """A write ran out of space; still an OSError (errno ENOSPC), so code catching I/O errors catches it."""


class CorruptTargetError(NightshiftError):
    """A folder that looks complete (it has `_SUCCESS`) holds a file that cannot be read."""

    def __init__(self, message: str, file: str = ""):
        super().__init__(message)
        self.file = file


class SchemaError(NightshiftError):
    """An input lacks a column, has the wrong type, is empty or unreadable."""


class DataQualityError(NightshiftError):
    """Too many raw rows were rejected (quarantined) for the day to be trusted."""


class VolumeError(DataQualityError):
    """A raw drop holds far fewer or far more rows than the same drop on the days before."""


class NotEnoughSnapshots(NightshiftError):
    """Too few labelled snapshots exist to train a model for this date."""


class ModelIntegrityError(NightshiftError):
    """A model file does not match its metadata, or was written by incompatible library versions."""


class FeatureMismatch(NightshiftError):
    """The model's features differ from the feature table's (names or dtypes)."""


class PredictionsRejected(NightshiftError):
    """The validation gate rejected a batch of predictions."""


class ApprovalError(NightshiftError):
    """A person tried to approve a date that has no rejected validation report."""


class PublishError(NightshiftError):
    """The production database cannot be reached or refused the day's rows."""


class ServiceUnavailable(NightshiftError):
    """A service the run needs (the Spark Connect server) does not answer; nothing was written."""

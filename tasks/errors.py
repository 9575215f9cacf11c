"""Errors users see: each names what failed, where, how many, the threshold and the measured value."""


class NightshiftError(Exception):
    """Base of every error nightshift raises on purpose."""


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

"""nightshift's Luigi tasks: `luigi --module tasks DailyScoring --date YYYY-MM-DD`."""
from tasks.features import ClientFeatures, FeatureTable, TransactionDaily, TransactionFeatures
from tasks.monitor import MonitorModel, RealizedPerformance
from tasks.pipeline import DailyScoring
from tasks.predict import Predict
from tasks.publish import Publish
from tasks.raw import RawClients, RawLabels, RawTransactions
from tasks.train import TrainingSet, TrainModel
from tasks.validate import ValidatePredictions
from tasks import alerts  # noqa: E402,F401  (registers the failure and rejection alerts)
from tasks import settings

settings.install()  # every run of this process validates the settings before any work

__all__ = [
    "RawClients", "RawTransactions", "RawLabels",
    "ClientFeatures", "TransactionDaily", "TransactionFeatures", "FeatureTable",
    "TrainingSet", "TrainModel", "Predict", "ValidatePredictions", "Publish",
    "RealizedPerformance", "MonitorModel", "DailyScoring",
]

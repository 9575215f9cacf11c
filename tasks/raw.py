"""Raw stage: upstream drops as ExternalTasks, complete when their `_SUCCESS` flag has landed."""
import luigi

from targets.directory import DirectoryTarget
from tasks import config


class RawClients(luigi.ExternalTask):
    """raw/clients/dt=D/clients.csv: the daily client snapshot."""

    date = luigi.DateParameter()

    def output(self):
        return DirectoryTarget(config.raw_path("clients", self.date))


class RawTransactions(luigi.ExternalTask):
    """raw/transactions/dt=D/*.parquet: that day's card transactions."""

    date = luigi.DateParameter()

    def output(self):
        return DirectoryTarget(config.raw_path("transactions", self.date))


class RawLabels(luigi.ExternalTask):
    """raw/labels/dt=S/labels.csv: observed defaults of the clients scored on S (lands ~30 days later)."""

    date = luigi.DateParameter()

    def output(self):
        return DirectoryTarget(config.raw_path("labels", self.date))

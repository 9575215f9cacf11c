"""The nightly entry point: DailyScoring(D) is done when D's validated scores are in production and monitored."""
import luigi

from tasks.monitor import MonitorModel
from tasks.publish import Publish


class DailyScoring(luigi.WrapperTask):
    """What cron runs: `luigi --module tasks DailyScoring --date D`."""

    date = luigi.DateParameter()

    def requires(self):
        return [Publish(self.date), MonitorModel(self.date)]

    @classmethod
    def bulk_complete(cls, parameter_tuples):
        """The dates already in production; lets `RangeDaily --of DailyScoring` find the missing ones."""
        return [date for date in parameter_tuples if cls(date=date).complete()]

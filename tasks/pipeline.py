"""The nightly entry point: DailyScoring(D) is done when D's validated scores are in production."""
import luigi

from tasks.publish import Publish


class DailyScoring(luigi.WrapperTask):
    """What cron runs: `luigi --module tasks DailyScoring --date D`."""

    date = luigi.DateParameter()

    def requires(self):
        return Publish(self.date)

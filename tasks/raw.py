"""Raw stage: upstream drops as ExternalTasks, complete when their `_SUCCESS` flag has landed."""
import sys

import luigi

from targets import fs
from targets.directory import SUCCESS, DirectoryTarget
from tasks import config


class RawDrop(luigi.ExternalTask):
    """One upstream partition folder; a run that needs it while it is incomplete says so in one line."""

    date = luigi.DateParameter()
    kind = None  # the folder under raw/, set by each drop

    def output(self):
        return DirectoryTarget(config.raw_path(self.kind, self.date))


def describe_missing(uri: str) -> str:
    """Why a drop folder does not count as landed: absent, or present without its `_SUCCESS` flag."""
    try:
        if not fs.exists(uri):
            return "folder absent"
        files = [name for name in fs.list_dir(uri) if name != SUCCESS]
        return f"no {SUCCESS} flag yet ({len(files)} file(s) present)"
    except Exception as exc:  # an unreachable filesystem must still give the user the path
        return f"cannot be checked: {exc}"


@RawDrop.event_handler(luigi.Event.DEPENDENCY_MISSING)
def _report_missing(task: RawDrop) -> None:
    # Luigi's own summary names the task, not the path; an operator needs the path, once, without a traceback.
    uri = task.output().uri
    print(f"nightshift: missing raw partition {uri}: {describe_missing(uri)}", file=sys.stderr, flush=True)


class RawClients(RawDrop):
    """raw/clients/dt=D/clients.csv: the daily client snapshot."""

    kind = "clients"


class RawTransactions(RawDrop):
    """raw/transactions/dt=D/*.parquet: that day's card transactions."""

    kind = "transactions"


class RawLabels(RawDrop):
    """raw/labels/dt=S/labels.csv: observed defaults of the clients scored on S (lands ~30 days later)."""

    kind = "labels"

"""Several days of one task in one run, through Luigi's batching, for the stages whose days are independent.

When Luigi's scheduler holds several pending, runnable tasks of a family whose `date` is a DayParameter (a backfill;
a first night, which aggregates 41 days of transactions), it hands the worker all of them as one run: the instance
it builds has `date` = Days(d1, d2, ...) (Luigi's `batch_method`), and the scheduler marks every member done when
that run succeeds, or failed when it raises. Such a task's run() does the work of `members()` in one Spark job per
pass, and still writes each day's own target with that day's own manifest, as the day's run alone would: a day is
a batch of one. A single pending day is never batched, so a nightly run stays one day.

For a batch, requires() and output() are the lists of the members' and complete() says whether every member is.
A day that fails its checks is left out and the others are written; the run then fails naming every failed day
(DaysFailed), and the next run redoes only those.
"""
import contextlib
import datetime as dt
from typing import Callable

import luigi

from targets import fs
from tasks.errors import NightshiftError

# The column that tells a batch's rows apart by day, and names the folders of a batch's scratch output.
BATCH_DAY = "batch_day"


class DaysFailed(NightshiftError):
    """Days of a batch failed their checks; the batch's other days were written."""


class Days(tuple):
    """The dates of a batch, sorted and distinct; shown as `d1,d2,...` (the web view's task name)."""

    def __new__(cls, dates):
        return super().__new__(cls, sorted(set(dates)))

    def __str__(self) -> str:
        return ",".join(day.isoformat() for day in self)


class DayParameter(luigi.DateParameter):
    """A task's date, or the Days of a batch of the same task's pending dates."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, batch_method=Days, **kwargs)

    def normalize(self, value):
        return value if isinstance(value, Days) else super().normalize(value)

    def serialize(self, value):
        return str(value) if isinstance(value, Days) else super().serialize(value)

    def next_in_enumeration(self, value):
        """The next date (Luigi's run summary groups consecutive days); a batch has none."""
        return None if isinstance(value, Days) else super().next_in_enumeration(value)


def _per_member(method):
    def for_members(self):
        return [method(member) for member in self.members()] if self.is_batch else method(self)

    for_members.__wrapped__ = method
    return for_members


class Batchable(luigi.Task):
    """Base of a task whose pending days Luigi may run as one batch; its run() works on `members()`."""

    date = DayParameter()
    # Days per batch: bounds one run's Spark job (a month of a 10M-client bank's transactions is 90M rows).
    max_batch_size = 31

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in ("requires", "output"):
            method = cls.__dict__.get(name)
            if method is not None and not hasattr(method, "__wrapped__"):
                setattr(cls, name, _per_member(method))

    @property
    def is_batch(self) -> bool:
        return isinstance(self.date, Days)

    def members(self) -> list["Batchable"]:
        """The one-day tasks this run stands for (itself, for one day)."""
        if not self.is_batch:
            return [self]
        return [type(self)(**{**self.param_kwargs, "date": day}) for day in self.date]

    def complete(self) -> bool:
        if self.is_batch:
            return all(member.complete() for member in self.members())
        return super().complete()


class DayFailures:
    """The errors of a run's days: a day whose checks fail is left out, the others go on; raised at the end."""

    def __init__(self):
        self.errors: list[NightshiftError] = []

    @contextlib.contextmanager
    def collecting(self):
        try:
            yield
        except NightshiftError as exc:
            self.errors.append(exc)

    def raise_for(self, task: Batchable) -> None:
        """Raise a one-day run's error as it was; a batch's as DaysFailed, which names every failed day's error."""
        if not self.errors:
            return
        if not task.is_batch:
            raise self.errors[0]
        details = "; ".join(f"{type(error).__name__}: {error}" for error in self.errors)
        raise DaysFailed(f"{len(self.errors)} of {len(task.date)} days of {task.task_family} failed, the others are "
                         f"written: {details}")


def write_by_day(frame, folder: str, options: dict[str, str] | None = None) -> None:
    """`frame`'s rows under `folder`, one folder per BATCH_DAY, in one Spark job: as many files in a day's folder
    as Spark tasks held rows of that day. `options`: the parquet writer's."""
    frame.write.options(**(options or {})).partitionBy(BATCH_DAY).parquet(fs.spark_uri(folder))


def day_folder(folder: str, day: dt.date) -> str:
    """Where write_by_day puts `day`'s rows under `folder`."""
    return fs.join(folder, f"{BATCH_DAY}={day.isoformat()}")


def take_day(folder: str, day: dt.date, frame) -> Callable[[str], None]:
    """What moves `day`'s rows of `frame`, written by write_by_day under `folder`, into a target's folder; for a
    day without rows, an empty file with the frame's columns, as Spark writes for an empty frame. `frame` is the
    Spark frame, or the rows' pyarrow schema."""
    def into(target_folder: str) -> None:
        part = day_folder(folder, day)
        if fs.exists(part):
            fs.move(part, target_folder)
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        filesystem, path = fs.resolve(target_folder)
        filesystem.create_dir(path, recursive=True)
        if isinstance(frame, pa.Schema):
            empty = frame.empty_table()
        else:
            from pyspark.sql.pandas.types import to_arrow_schema

            empty = to_arrow_schema(frame.drop(BATCH_DAY).schema, timezone="UTC").empty_table()
        pq.write_table(empty, f"{path}/part-00000-empty.parquet", filesystem=filesystem)

    return into

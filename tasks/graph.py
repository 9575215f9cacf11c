"""The night's task graph as the operator tools see it, read through requires(), output() and complete() only.

Nothing here runs a task or starts Spark: asking a night what is done costs what its targets' existence
checks cost. `walk` is the one traversal (depth first, in requires() order); `Graph` adds who requires
whom, for the downstream of a task; `States` is the one place that says done, pending or missing.
"""
import datetime as dt
from typing import Callable, Iterable, Iterator, NamedTuple

import luigi
from luigi.task import flatten

from tasks.pipeline import DailyScoring
from tasks.publish import Publish
from tasks.raw import RawDrop

DONE, PENDING, MISSING = "done", "pending", "missing"
STATES = (DONE, PENDING, MISSING)


def night(date: dt.date) -> luigi.Task:
    """The root of the graph the operator tools look at for scoring date `date`."""
    return DailyScoring(date=date)


def is_raw_drop(task: luigi.Task) -> bool:
    """An upstream partition: nightshift never runs it nor deletes it; incomplete means it has not landed."""
    return isinstance(task, RawDrop)


def has_target(task: luigi.Task) -> bool:
    """Whether the task writes something of its own (a WrapperTask is done when its requirements are)."""
    return bool(flatten(task.output()))


def requirements(task: luigi.Task) -> list[luigi.Task]:
    """The task's direct requirements, in the order requires() gives them."""
    return flatten(task.requires())


def _earlier_publication(task: luigi.Task, root: luigi.Task) -> bool:
    """A Publish of a day before the night's own (met through the night's monitoring): its graph is another night's."""
    return isinstance(task, Publish) and task.date != getattr(root, "date", task.date)


class States:
    """done / pending / missing of each task, asking complete() once per task.

    Tasks in `assume_absent` count as not complete whatever their targets say: what a run would do once
    they are deleted (a dry run).
    """

    def __init__(self, assume_absent: Iterable[str] = ()):
        self.absent = set(assume_absent)
        self.known: dict[str, str] = {}

    def __call__(self, task: luigi.Task) -> str:
        if task.task_id not in self.known:
            self.known[task.task_id] = self._state(task)
        return self.known[task.task_id]

    def _state(self, task: luigi.Task) -> str:
        if task.task_id in self.absent:
            done = False
        elif has_target(task) or is_raw_drop(task):
            done = task.complete()
        else:  # a WrapperTask: done when its requirements are, as these states see them
            done = all(self(dep) == DONE for dep in requirements(task))
        if done:
            return DONE
        return MISSING if is_raw_drop(task) else PENDING

    def counts(self) -> dict[str, int]:
        """How many of the tasks asked about so far are in each state."""
        return {state: sum(1 for s in self.known.values() if s == state) for state in STATES}


class Visit(NamedTuple):
    """One step of a walk: a task, its depth below the root, its state (None when not asked) and how it was met."""

    task: luigi.Task
    depth: int
    state: str | None
    repeat: bool = False  # met before through another path (a TransactionDaily shared by windows)
    parent: luigi.Task | None = None


def walk(root: luigi.Task, states: Callable[[luigi.Task], str] | None = None,
         descend: Callable[[luigi.Task, str | None], bool] | None = None) -> Iterator[Visit]:
    """Every edge of the graph below `root`, depth first, requirements in requires() order.

    A task met again is yielded with repeat=True and not entered again. `states` (e.g. a States) gives
    each visit its state; without it complete() is never called. `descend(task, state)` says whether to
    enter a task's requirements (e.g. not those of a done task, as Luigi does); by default all are.
    """
    seen: set[str] = set()
    stack = [(root, 0, None)]
    while stack:
        task, depth, parent = stack.pop()
        state = states(task) if states is not None else None
        repeat = task.task_id in seen
        seen.add(task.task_id)
        yield Visit(task, depth, state, repeat, parent)
        if not repeat and (descend is None or descend(task, state)):
            stack.extend((dep, depth + 1, task) for dep in reversed(requirements(task)))


class Graph:
    """Every task below `root` by id and, for each, the ids of the tasks that require it. No complete() calls."""

    def __init__(self, root: luigi.Task):
        self.root = root
        self.tasks: dict[str, luigi.Task] = {}
        self.dependents: dict[str, set[str]] = {}
        for visit in walk(root, descend=lambda task, _: not _earlier_publication(task, root)):
            self.tasks.setdefault(visit.task.task_id, visit.task)
            parents = self.dependents.setdefault(visit.task.task_id, set())
            if visit.parent is not None:
                parents.add(visit.parent.task_id)
        self._depth: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.tasks)

    def family(self, name: str) -> list[luigi.Task]:
        return [task for task in self.tasks.values() if task.task_family == name]

    def downstream(self, start: Iterable[str]) -> set[str]:
        """`start` and every task of the night that depends on one of them: up to Publish, the DB marker included,
        and the night's monitoring that read it. An earlier published day is never reached: it is history."""
        seen, stack = set(start), list(start)
        while stack:
            task_id = stack.pop()
            for parent in self.dependents.get(task_id, ()):
                if parent not in seen:
                    seen.add(parent)
                    stack.append(parent)
        return seen

    def depth(self, task_id: str) -> int:
        """Longest path from the root (0): in increasing depth, dependents come before their inputs."""
        if task_id not in self._depth:
            parents = self.dependents.get(task_id, ())
            self._depth[task_id] = 1 + max(self.depth(p) for p in parents) if parents else 0
        return self._depth[task_id]

    def downstream_first(self, ids: Iterable[str]) -> list[luigi.Task]:
        """The tasks of `ids`, every dependent before what it depends on (the order to delete targets in)."""
        return sorted((self.tasks[i] for i in ids), key=lambda t: (self.depth(t.task_id), t.task_id))


def will_run(root: luigi.Task, removed: Iterable[str] = ()) -> tuple[list[luigi.Task], list[luigi.Task]]:
    """What a run of `root` would do once `removed` targets are gone: (tasks it runs, raw drops missing).

    Luigi descends only into the requirements of incomplete tasks, and so does this walk.
    """
    visits = [v for v in walk(root, States(removed), descend=lambda task, state: state != DONE) if not v.repeat]
    return [v.task for v in visits if v.state == PENDING], [v.task for v in visits if v.state == MISSING]

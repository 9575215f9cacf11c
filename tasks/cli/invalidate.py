"""Delete a task's target (and, with --downstream, every target that depends on it) so the next run redoes it.

    bin/invalidate TASK --date D [--downstream] [--dry-run] [--task-date X]

TASK is a task family of DailyScoring(D)'s graph (Predict, FeatureTable, TrainModel, ...). The graph
is walked through requires() only: no Spark starts. The instance dated D is chosen; a family with
another date in the graph (TrainModel(M), TransactionDaily(d)) is chosen when it is the only one,
or with --task-date. With --downstream, every target of the graph that depends on it is deleted
too, up to and including Publish's marker row in publish_log (the published rows stay until the
next publish replaces them). Raw drops are never deleted.
Exit status: 0 done (or nothing to delete), 1 refused (not a task of the graph, a raw drop, ambiguous).
"""
import argparse
import datetime as dt
import sys

import luigi
from luigi.task import flatten

from targets import fs
from tasks import graph
from tasks.validate import APPROVAL_FILE

PROG = "bin/invalidate"


class Refused(Exception):
    """The named task cannot be invalidated; the message says why and what can be."""


def summarise(tasks: list[luigi.Task]) -> str:
    """`Predict(2026-03-02), 7 TransactionDaily(2026-02-23..2026-03-01)`: tasks grouped by family."""
    by_family: dict[str, list] = {}
    for task in tasks:
        by_family.setdefault(task.task_family, []).append(getattr(task, "date", None))
    parts = []
    for family, dates in sorted(by_family.items()):
        dates = sorted(d for d in dates if d is not None)
        if not dates:
            parts.append(family)
        elif len(dates) == 1:
            parts.append(f"{family}({dates[0]})")
        else:
            parts.append(f"{len(dates)} {family}({dates[0]}..{dates[-1]})")
    return ", ".join(parts) or "nothing"


def describe(target) -> str:
    return getattr(target, "uri", None) or getattr(target, "path", None) or repr(target)


def choose(name: str, date: dt.date, task_date: dt.date | None, night: graph.Graph) -> list[luigi.Task]:
    """The instances of family `name` to invalidate; Refused when there is none or the choice is not clear."""
    internal = sorted({t.task_family for t in night.tasks.values() if not graph.is_raw_drop(t) and graph.has_target(t)})
    candidates = night.family(name)
    if not candidates:
        raise Refused(f"{name!r} is not a task of DailyScoring({date})'s graph; valid names: {', '.join(internal)}")
    if graph.is_raw_drop(candidates[0]):
        raise Refused(f"{name} is an upstream drop (ExternalTask); nightshift never deletes raw data. "
                      f"Tasks you can invalidate: {', '.join(internal)}")
    if not graph.has_target(candidates[0]):
        raise Refused(f"{name} has no target of its own (it is done when its requirements are); "
                      f"invalidate one of: {', '.join(internal)}")
    dates = sorted(getattr(t, "date", None) for t in candidates)
    if task_date is not None:
        chosen = [t for t in candidates if getattr(t, "date", None) == task_date]
        if not chosen:
            raise Refused(f"no {name}({task_date}) in DailyScoring({date})'s graph; "
                          f"its {name} dates: {', '.join(map(str, dates))}")
        return chosen
    same_day = [t for t in candidates if getattr(t, "date", None) == date]
    if same_day:
        return same_day
    if len(candidates) == 1:
        return candidates
    raise Refused(f"DailyScoring({date})'s graph holds {len(candidates)} {name} tasks "
                  f"(dates {dates[0]}..{dates[-1]}); pick one with --task-date")


def delete_targets(tasks: list[luigi.Task], dry_run: bool) -> int:
    """Print each target of `tasks` and delete it unless `dry_run`; returns how many were present."""
    present = 0
    for task in tasks:
        for target in flatten(task.output()):
            if not target.exists():
                print(f"  {task}: {describe(target)} (already absent)")
                continue
            approval = fs.join(target.uri, APPROVAL_FILE) if hasattr(target, "uri") else None
            note = ", with the approval recorded there" if approval and fs.is_file(approval) else ""
            print(f"  {task}: {describe(target)}{note}")
            present += 1
            if not dry_run:
                target.remove()
    return present


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", metavar="TASK", help="Task family, e.g. Predict.")
    parser.add_argument("--date", required=True, type=dt.date.fromisoformat, help="Scoring date YYYY-MM-DD.")
    parser.add_argument("--downstream", action="store_true", help="Also delete every target that depends on it.")
    parser.add_argument("--dry-run", action="store_true", help="Say what would be deleted and redone; delete nothing.")
    parser.add_argument("--task-date", type=dt.date.fromisoformat,
                        help="The task's own date when the graph holds several (e.g. TransactionDaily).")
    args = parser.parse_args(argv)

    root = graph.night(args.date)
    night = graph.Graph(root)
    try:
        chosen = choose(args.task, args.date, args.task_date, night)
    except Refused as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    ids = {t.task_id for t in chosen}
    if args.downstream:
        ids = night.downstream(ids)
    order = [task for task in night.downstream_first(ids) if graph.has_target(task)]

    verb = "would delete" if args.dry_run else "deleting"
    print(f"DailyScoring({args.date}): {verb} the targets of {len(order)} task(s), downstream first")
    present = delete_targets(order, args.dry_run)

    runs, missing = graph.will_run(root, ids if args.dry_run else ())
    done, redo = ("Would delete", "would redo") if args.dry_run else ("Deleted", "redoes")
    print(f"{done} {present} target(s). The next run of DailyScoring({args.date}) {redo}: {summarise(runs)}")
    if missing:
        print(f"  and waits for raw drops that have not landed: {summarise(missing)}")
    if runs:
        print(f"Run it: bin/run-daily --date {args.date}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

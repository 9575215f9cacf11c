"""Print DailyScoring(D)'s task graph with what is done, what is pending and which raw drops are missing,
then every stale target of the night with the reason.

    bin/status --date D [--all]
    bin/status --from A --to B
    bin/status --check-config [--date D]

Reads targets only (files, manifests and the publish_log row): no Spark starts. A task that appears several
times in the graph (a TransactionDaily shared by windows) is printed once; later mentions say
"(above)". Without --all, the inputs of a done task are folded into one line: a done task never
looks at them again. With --from/--to, one line per night and its stale targets, without the tree.
A stale target (docs/provenance.md) is rebuilt by the next run that needs it, except a published night's
own targets: those are listed "published, stale" and stay until bin/invalidate --stale.
Exit status: 0 when the day (every day of the range) is done, 1 when something is pending.

--check-config runs the checks every run starts with (tasks/settings.py) and nothing else: exit 0 and a
summary when the settings are sound, exit 2 and one line naming every broken rule when they are not. With
--date (or --from/--to) as well, the night's status follows sound settings.
"""
import argparse
import datetime as dt
import signal
import sys

import luigi

from tasks import graph, provenance, settings
from tasks.errors import ConfigurationError

MARKS = {graph.DONE: "[done]   ", graph.PENDING: "[pending]", graph.MISSING: "[missing]"}


def label(task: luigi.Task) -> str:
    date = getattr(task, "date", None)
    return f"{task.task_family}({date})" if date is not None else str(task)


def _last_flags(visits: list[graph.Visit]) -> list[bool]:
    """For each visit of a depth-first walk, whether it is the last requirement of its parent."""
    flags = [True] * len(visits)
    later: dict[int, bool] = {}  # depth -> a sibling comes later
    for i in range(len(visits) - 1, -1, -1):
        depth = visits[i].depth
        flags[i] = not later.get(depth, False)
        later = {d: v for d, v in later.items() if d < depth}
        later[depth] = True
    return flags


def render(root: luigi.Task, states: graph.States, show_all: bool) -> list[str]:
    """The tree, one line per visit, with the inputs of done tasks folded unless `show_all`."""
    def descend(task: luigi.Task, state: str) -> bool:
        return show_all or state != graph.DONE

    visits = list(graph.walk(root, states, descend))
    lasts = _last_flags(visits)
    lines, ancestors_last = [], []
    for visit, last in zip(visits, lasts):
        del ancestors_last[max(visit.depth - 1, 0):]
        prefix = "".join("    " if a else "│   " for a in ancestors_last)
        branch = "" if visit.depth == 0 else ("└── " if last else "├── ")
        if visit.depth > 0:
            ancestors_last.append(last)
        line = f"{prefix}{branch}{MARKS[visit.state]} {label(visit.task)}"
        if visit.repeat:
            line += " (above)"
        elif not descend(visit.task, visit.state) and graph.requirements(visit.task):
            line += f"  ({len(graph.Graph(visit.task)) - 1} input task(s) folded)"
        lines.append(line)
    return lines


def stale_lines(report: provenance.NightProvenance) -> list[str]:
    """The night's stale targets with their reasons, and what to do about them."""
    lines = []
    for entry in report.stale:
        mark = "published, stale" if entry.stays else "stale, rebuilt by the next run that needs it"
        lines.append(f"  {label(entry.task)} [{mark}]: {'; '.join(entry.reasons)}")
    if report.stale:
        head = f"{len(report.stale)} stale target(s):"
        if report.published:
            head = f"DailyScoring({report.date}) is published, stale: {head}"
        lines.insert(0, head)
        if any(entry.stays for entry in report.stale):
            lines.append(f"  bin/invalidate --stale --date {report.date} [--dry-run] removes them and what depends on "
                         f"them, so that the next run redoes them")
        else:
            lines.append(f"  the next run of DailyScoring({report.date}) rebuilds them")
    if report.unknown:
        lines.append(f"{len(report.unknown)} target(s) without a manifest (written before manifests existed; not "
                     f"judged): bin/invalidate --stale --adopt --date {report.date} records them")
    return lines


def nights(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[dt.date]:
    """The nights asked for: --date, or every day from --from to --to."""
    if args.date is not None:
        if args.start or args.end:
            parser.error("give --date or --from/--to, not both")
        return [args.date]
    if args.start is None or args.end is None:
        parser.error("--date D is required (or --from A --to B, or --check-config)")
    if args.end < args.start:
        parser.error(f"--to {args.end} is before --from {args.start}")
    return [args.start + dt.timedelta(days=i) for i in range((args.end - args.start).days + 1)]


def add_night_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--date", type=dt.date.fromisoformat, help="Scoring date YYYY-MM-DD.")
    parser.add_argument("--from", dest="start", type=dt.date.fromisoformat, help="First night of a range.")
    parser.add_argument("--to", dest="end", type=dt.date.fromisoformat, help="Last night of a range (included).")


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `bin/status ... | head` ends quietly
    parser = argparse.ArgumentParser(prog="bin/status", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_night_arguments(parser)
    parser.add_argument("--all", action="store_true", help="Also unfold the inputs of done tasks.")
    parser.add_argument("--check-config", action="store_true",
                        help="Validate every nightshift setting (as each run does first) and report.")
    args = parser.parse_args(argv)
    if args.check_config:
        try:
            settings.check()
        except ConfigurationError as exc:
            print(f"bin/status: ConfigurationError: {exc}", file=sys.stderr)
            return 2
        classes = settings.config_classes()
        print(f"settings sound: {sum(len(cls.get_params()) for cls in classes)} keys in {len(classes)} sections "
              f"checked ({', '.join(cls.get_task_family() for cls in classes)})")
        if args.date is None and args.start is None and args.end is None:
            return 0
    dates = nights(args, parser)
    checked = provenance.Provenance()  # one memo for the whole range: shared inputs are fingerprinted once
    done = True
    for date in dates:
        root = graph.night(date)
        states = graph.States()
        report = provenance.night_provenance(date, graph.Graph(root).tasks.values(), checked)
        if args.date is not None:
            print("\n".join(render(root, states, args.all)))
            counts = states.counts()
            print(f"\n{counts[graph.DONE]} done, {counts[graph.PENDING]} pending, {counts[graph.MISSING]} raw drop(s) "
                  f"missing (of the tasks looked at)")
        else:
            state = states(root)
            stale = f", {len(report.stale)} stale" if report.stale else ""
            print(f"{MARKS[state]} DailyScoring({date}){stale}")
        lines = stale_lines(report)
        if lines:
            print("\n".join(lines))
        done = done and states(root) == graph.DONE
    return 0 if done else 1


if __name__ == "__main__":
    raise SystemExit(main())

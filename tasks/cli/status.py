"""Print DailyScoring(D)'s task graph with what is done, what is pending and which raw drops are missing.

    bin/status --date D [--all]
    bin/status --check-config


Reads targets only (files and the publish_log row): no Spark starts. A task that appears several
times in the graph (a TransactionDaily shared by windows) is printed once; later mentions say
"(above)". Without --all, the inputs of a done task are folded into one line: a done task never
looks at them again.
Exit status: 0 when the day is done, 1 when something is pending.

--check-config runs the checks every run starts with (tasks/settings.py) and nothing else: exit 0 and a
summary when the settings are sound, exit 2 and one line naming every broken rule when they are not. With
--date as well, the night's status follows sound settings.
"""
import argparse
import datetime as dt
import signal
import sys

import luigi

from tasks import graph, settings
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


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `bin/status ... | head` ends quietly
    parser = argparse.ArgumentParser(prog="bin/status", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--date", type=dt.date.fromisoformat, help="Scoring date YYYY-MM-DD.")
    parser.add_argument("--all", action="store_true", help="Also unfold the inputs of done tasks.")
    parser.add_argument("--check-config", action="store_true",
                        help="Validate every nightshift setting (as each run does first) and report.")
    args = parser.parse_args(argv)
    if args.date is None and not args.check_config:
        parser.error("--date is required (or --check-config)")
    if args.check_config:
        try:
            settings.check()
        except ConfigurationError as exc:
            print(f"bin/status: ConfigurationError: {exc}", file=sys.stderr)
            return 2
        classes = settings.config_classes()
        print(f"settings sound: {sum(len(cls.get_params()) for cls in classes)} keys in {len(classes)} sections "
              f"checked ({', '.join(cls.get_task_family() for cls in classes)})")
        if args.date is None:
            return 0
    root = graph.night(args.date)
    states = graph.States()
    print("\n".join(render(root, states, args.all)))
    counts = states.counts()
    print(f"\n{counts[graph.DONE]} done, {counts[graph.PENDING]} pending, {counts[graph.MISSING]} raw drop(s) missing "
          f"(of the tasks looked at)")
    return 0 if states(root) == graph.DONE else 1


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""Benchmark runner: one nightshift run in its own process (as cron would start it), timed per stage.

Usage:
    bench/night.py --out FILE.json --date D                  DailyScoring(D)
    bench/night.py --out FILE.json --start A --stop B        DailyScoring(d) for d in A..B-1, one luigi.build

Config comes from LUIGI_CONFIG_PATH as for any run. Writes to FILE.json: wall time of luigi.build,
per task family the summed `PROCESSING_TIME` (run() only) and how many ran, the import time, Luigi's
scheduling time (until the first run() starts), whether a Spark session was started and how long it took
to start. Exits non-zero when a task failed.
"""
import argparse
import datetime as dt
import json
import os
import sys
import time

STARTED = time.perf_counter()
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import luigi  # noqa: E402

import tasks  # noqa: E402
import tasks.spark  # noqa: E402

IMPORTED = time.perf_counter()
stages: dict[str, dict] = {}
first_start: list[float] = []


@luigi.Task.event_handler(luigi.Event.START)
def _start(task):
    if not first_start:
        first_start.append(time.perf_counter())


jvm_started_in: list[str] = []


@luigi.Task.event_handler(luigi.Event.PROCESSING_TIME)
def _processing_time(task, seconds):
    # One worker runs tasks one after another: the first to finish once a session exists is the one that started it.
    if not jvm_started_in and tasks.spark.startup_seconds is not None:
        jvm_started_in.append(task.task_family)
    entry = stages.setdefault(task.task_family, {"seconds": 0.0, "count": 0})
    entry["seconds"] += seconds
    entry["count"] += 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--date", type=dt.date.fromisoformat)
    parser.add_argument("--start", type=dt.date.fromisoformat)
    parser.add_argument("--stop", type=dt.date.fromisoformat, help="exclusive, as RangeDaily's")
    args = parser.parse_args(argv)
    if args.date:
        jobs = [tasks.DailyScoring(date=args.date)]
    else:
        # The days RangeDaily would schedule, built directly: RangeDaily's bulk completeness check needs
        # an output with a filesystem path, which DailyScoring's (a database marker) does not have.
        days = (args.stop - args.start).days
        jobs = [tasks.DailyScoring(date=args.start + dt.timedelta(days=k)) for k in range(days)]
    mark = time.perf_counter()
    result = luigi.build(jobs, local_scheduler=True, workers=1, detailed_summary=True)
    build = time.perf_counter() - mark
    # luigi.build's completeness checks and graph walk, until the first task's run() starts (all of build if none ran)
    scheduling = (first_start[0] if first_start else time.perf_counter()) - mark
    spark_started = tasks.spark._session is not None
    mark = time.perf_counter()
    tasks.spark.stop()
    stop = time.perf_counter() - mark
    report = {
        "ok": bool(result.scheduling_succeeded) and result.status.name in ("SUCCESS", "SUCCESS_WITH_RETRY"),
        "status": result.status.name,
        "import_seconds": IMPORTED - STARTED,
        "build_seconds": build,
        "spark_stop_seconds": stop,
        "spark_started": spark_started,
        "scheduling_seconds": scheduling,
        # inside the first Spark task's run(): launching the JVM and the SparkContext
        "jvm_start_seconds": tasks.spark.startup_seconds,
        "jvm_started_in": jvm_started_in[0] if jvm_started_in else None,
        "stages": stages,
    }
    with open(args.out, "w") as fh:
        json.dump(report, fh, indent=2)
    if not report["ok"]:
        print(result.summary_text, file=sys.stderr)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Benchmark runner: one nightshift run in its own process (as cron would start it), timed per stage.

Usage:
    bench/night.py --out FILE.json --date D                  DailyScoring(D)
    bench/night.py --out FILE.json --start A --stop B        DailyScoring(d) for d in A..B-1, one luigi.build
    [--workers N]                                           Luigi workers (default: [core] workers, else 1)

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
import tempfile
import time

STARTED = time.perf_counter()
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import luigi  # noqa: E402

import tasks  # noqa: E402
import tasks.spark  # noqa: E402

IMPORTED = time.perf_counter()
# With --workers N Luigi runs each task in a forked process, where its events fire: every finished task
# appends one line to this file, which the parent sums.
EVENTS = tempfile.NamedTemporaryFile("a", prefix="night-", suffix=".jsonl", delete=False)


def _record(**event) -> None:
    # One write of one short line to a file opened for appending: lines of concurrent tasks never interleave.
    os.write(EVENTS.fileno(), (json.dumps({"at": time.time(), **event}) + "\n").encode())


@luigi.Task.event_handler(luigi.Event.START)
def _start(task):
    _record(started=task.task_family)


@luigi.Task.event_handler(luigi.Event.PROCESSING_TIME)
def _processing_time(task, seconds):
    _record(family=task.task_family, seconds=seconds, spark_startup=tasks.spark.startup_seconds)


def summed(path: str) -> dict:
    """Per task family the summed run() seconds and count, when the first task started, and the first task
    that had a Spark session with how long that session took to start (in whichever process ran it)."""
    stages: dict[str, dict] = {}
    first_start = jvm_started_in = jvm_start = None
    with open(path) as fh:
        events = sorted((json.loads(line) for line in fh), key=lambda e: e["at"])
    for event in events:
        if "started" in event:
            first_start = event["at"] if first_start is None else first_start
            continue
        if jvm_started_in is None and event["spark_startup"] is not None:
            jvm_started_in, jvm_start = event["family"], event["spark_startup"]
        entry = stages.setdefault(event["family"], {"seconds": 0.0, "count": 0})
        entry["seconds"] += event["seconds"]
        entry["count"] += 1
    return {"stages": stages, "first_start": first_start, "jvm_started_in": jvm_started_in, "jvm_start": jvm_start}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--date", type=dt.date.fromisoformat)
    parser.add_argument("--start", type=dt.date.fromisoformat)
    parser.add_argument("--stop", type=dt.date.fromisoformat, help="exclusive, as RangeDaily's")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    if args.date:
        jobs = [tasks.DailyScoring(date=args.date)]
    else:
        # The days RangeDaily would schedule, built directly: RangeDaily's bulk completeness check needs
        # an output with a filesystem path, which DailyScoring's (a database marker) does not have.
        days = (args.stop - args.start).days
        jobs = [tasks.DailyScoring(date=args.start + dt.timedelta(days=k)) for k in range(days)]
    mark = time.time()
    workers = args.workers or luigi.interface.core().workers
    try:
        result = luigi.build(jobs, local_scheduler=True, workers=workers, detailed_summary=True)
        build = time.time() - mark
        ran = summed(EVENTS.name)
    finally:
        os.unlink(EVENTS.name)
    # luigi.build's completeness checks and graph walk, until the first task starts (all of build if none ran)
    scheduling = (ran["first_start"] or time.time()) - mark
    mark = time.perf_counter()
    tasks.spark.stop()
    stop = time.perf_counter() - mark
    report = {
        "ok": bool(result.scheduling_succeeded) and result.status.name in ("SUCCESS", "SUCCESS_WITH_RETRY"),
        "status": result.status.name,
        "import_seconds": IMPORTED - STARTED,
        "build_seconds": build,
        "spark_stop_seconds": stop,
        "spark_started": ran["jvm_started_in"] is not None,
        "scheduling_seconds": scheduling,
        # inside the first Spark task's run(): launching the JVM and the SparkContext
        "jvm_start_seconds": ran["jvm_start"],
        "jvm_started_in": ran["jvm_started_in"],
        "workers": workers,
        "stages": ran["stages"],
    }
    with open(args.out, "w") as fh:
        json.dump(report, fh, indent=2)
    if not report["ok"]:
        print(result.summary_text, file=sys.stderr)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

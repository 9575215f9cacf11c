#!/usr/bin/env python3
"""Benchmark: a night of nightshift (cold, steady state, no-op, backfill) against the pandas baseline.

Usage:
    bench/run.py [--scales 100000,1000000] [--10m] [--backfill-days 30] [--backfill-up-to CLIENTS]
                 [--keep-data] [--out FILE] [--no-readme] [--report-only]

For every scale point (clients) it generates sample data under bench/data/ with nightshift.sample,
then runs, each in a fresh process as cron would start it (bench/night.py):

    cold       DailyScoring(D0) with nothing computed: 41 days of per-day aggregates, the training
               feature tables, the first model, scoring, validation, publish
    steady     DailyScoring(D0+1): only the new day is new (the nightly case)
    baseline   bench/baseline_pandas.py for D0+1 with the model nightshift trained
    backfill   DailyScoring D0+2..D0+1+B in one luigi.build (B new days, weekly retrains included)
    noop       the same range again, everything complete

and measures wall time (per stage from Luigi's PROCESSING_TIME events), the peak summed RSS of the
process tree (Python, the Spark JVM and its Python workers; sampled from /proc) and clients scored per
second. Results go to bench/results/latest.json, a table in docs/benchmark.md (between its
bench:start / bench:end markers; README.md is never written) and bench/results/stages.svg (with --no-readme,
the --out file's name with .svg).
"""
import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from tasks.cli.service import children_map, descendants, rss

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
# The page whose results table `make bench` rewrites.
TABLE_PAGE = os.path.join(REPO, "docs", "benchmark.md")
DAY = dt.timedelta(days=1)

# A Monday, so that the weekly model of the cold night is trained that night.
D0 = dt.date(2026, 3, 2)
TX_PER_CLIENT_DAY = 0.3
WINDOW_DAYS = 30
# Training: 2 labelled snapshots a week apart, labels 3 days after scoring, a new model every Monday.
MODEL = {"retrain": "weekly", "training_snapshots": 2, "snapshot_spacing_days": 7, "label_lag_days": 3}
TARGETS = {"steady_vs_baseline_100k": 3.0, "steady_vs_baseline_1m": 1.0, "steady_vs_baseline_10m": 0.5,
           "noop_seconds": 1.5, "backfill_in_steady_days": 15.0, "peak_gib_1m": 4.0, "peak_gib_10m": 6.0,
           "import_seconds": 0.8}
# The steady night's breakdown, in the order a night runs (docs/benchmark.md's per-stage table).
STEADY_STAGES = ("python_imports", "luigi_scheduling", "jvm_start", "ClientFeatures", "TransactionDaily",
                 "TransactionFeatures", "FeatureTable", "Predict", "ValidatePredictions", "Publish", "other")
GIB = 1024 ** 3
RUNS = ("cold", "steady", "backfill", "noop", "steady_local")


# --- measuring a process tree ---------------------------------------------------------------
def tree_rss(pid: int) -> int:
    """Summed resident set size in bytes of `pid` and all its descendants."""
    return sum(rss(p) for p in (pid, *descendants(pid)))


def measure(cmd: list[str], env: dict, interval: float = 0.2, also: tuple[int, ...] = ()) -> dict:
    """Run `cmd`, sampling the tree's RSS (plus the trees of the `also` pids: a Spark Connect server it uses);
    wall seconds, peak bytes of the whole (and, apart, of `cmd`'s own tree and of the `also` trees), stdout.
    Raises on failure."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0, 0, 0]  # the sum, cmd's tree, the also trees

    def sample():
        while proc.poll() is None:
            own, others = tree_rss(proc.pid), sum(tree_rss(pid) for pid in also)
            peak[:] = max(peak[0], own + others), max(peak[1], own), max(peak[2], others)
            time.sleep(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{err[-4000:]}")
    return {"wall_seconds": wall, "peak_rss_bytes": peak[0], "own_peak_rss_bytes": peak[1],
            "also_peak_rss_bytes": peak[2], "stdout": out}


# --- the scenarios --------------------------------------------------------------------------
def write_config(root: str, master: str, name: str = "bench.cfg") -> str:
    path = os.path.join(root, name)
    lines = ["[paths]", f"root = {root}", "", "[publish]", f"url = sqlite:///{root}/nightshift.db", "",
             "[features]", f"window_days = {WINDOW_DAYS}", "", "[spark]", f"master = {master}",
             f"server_dir = {os.path.join(root, 'var')}", "", "[model]"]
    lines += [f"{key} = {value}" for key, value in MODEL.items()]
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ConnectServer:
    """bin/spark-server's Spark Connect server for one scale point: the long-lived service the nights use."""

    def __init__(self, env: dict, root: str):
        self.env, self.root = env, root

    def __enter__(self):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tasks.cli.spark_server", "start", "--quiet"], cwd=REPO, env=self.env,
                       check=True)
        self.start_seconds = time.perf_counter() - started
        self.pid = int(open(os.path.join(self.root, "var", "spark-server.pid")).read())
        return self

    def __exit__(self, *exc):
        subprocess.run([sys.executable, "-m", "tasks.cli.spark_server", "stop", "--quiet"], cwd=REPO, env=self.env)
        return False

    def settle(self, timeout: float = 120.0) -> float:
        """Wait until the Python workers of earlier sessions have exited, as they have by the next night.

        Spark stops a Python worker after 60 s idle; a night that followed the previous one at once would
        find them still resident and count their memory. Returns the seconds waited.
        """
        started = time.perf_counter()
        while time.perf_counter() - started < timeout and python_workers(self.pid):
            time.sleep(1)
        return time.perf_counter() - started


def python_workers(server: int) -> int:
    """How many Python workers the server has: the children of its Python daemons (the JVM's children)."""
    children = children_map()
    return sum(len(children.get(daemon, [])) for daemon in children.get(server, []))


def data_span(backfill_days: int) -> tuple[dt.date, dt.date]:
    """First and last raw day needed: the oldest training snapshot's window .. the last backfill day's D-1."""
    oldest_snapshot = D0 - (MODEL["label_lag_days"] + 1 + (MODEL["training_snapshots"] - 1)
                            * MODEL["snapshot_spacing_days"]) * DAY
    return oldest_snapshot - WINDOW_DAYS * DAY, D0 + backfill_days * DAY


def night(env: dict, root: str, name: str, *args: str, server: ConnectServer | None = None) -> dict:
    out = os.path.join(root, f"night-{name}.json")
    result = measure([sys.executable, os.path.join(BENCH, "night.py"), "--out", out, *args], env,
                     also=(server.pid,) if server else ())
    with open(out) as fh:
        report = json.load(fh)
    stages = {family: entry for family, entry in sorted(report["stages"].items(), key=lambda kv: -kv[1]["seconds"])}
    staged = sum(entry["seconds"] for entry in stages.values())
    return {
        "wall_seconds": round(result["wall_seconds"], 2),
        "peak_rss_gib": round(result["peak_rss_bytes"] / GIB, 3),
        # each side's own peak (they need not fall at the same moment): which one a high peak came from
        "peak_rss_gib_night": round(result["own_peak_rss_bytes"] / GIB, 3),
        **({"peak_rss_gib_server": round(result["also_peak_rss_bytes"] / GIB, 3)} if server else {}),
        "stages": {family: {"seconds": round(e["seconds"], 2), "count": e["count"]} for family, e in stages.items()},
        # interpreter + imports, scheduling (complete() checks), JVM shutdown: everything outside run()
        "outside_tasks_seconds": round(result["wall_seconds"] - staged, 2),
        "import_seconds": round(report["import_seconds"], 2),
        "scheduling_seconds": round(report["scheduling_seconds"], 2),
        "jvm_start_seconds": None if report["jvm_start_seconds"] is None else round(report["jvm_start_seconds"], 2),
        "jvm_started_in": report.get("jvm_started_in"),
        "spark_started": report["spark_started"],
    }


def steady_stages(steady: dict, baseline: dict | None) -> dict:
    """Where a steady night's wall time goes, stage by stage, next to the baseline's.

    The JVM start is taken out of the task that started the session (the first Spark task to run);
    `other` is what is left of the wall time: the interpreter, stopping the JVM, the RSS sampler.
    """
    tasks = {family: e["seconds"] for family, e in steady["stages"].items()}
    jvm = steady.get("jvm_start_seconds") or 0.0
    if steady.get("jvm_started_in") in tasks:
        tasks[steady["jvm_started_in"]] = round(tasks[steady["jvm_started_in"]] - jvm, 2)
    night = {"python_imports": steady["import_seconds"], "luigi_scheduling": steady["scheduling_seconds"],
             "jvm_start": jvm, **{k: tasks.get(k, 0.0) for k in STEADY_STAGES[3:-1]}}
    night["other"] = round(steady["wall_seconds"] - sum(night.values()), 2)
    out = {"steady": {k: round(v, 2) for k, v in night.items()}}
    if baseline:
        parts = {k: v for k, v in baseline["stages"].items() if k != "total"}
        parts["python_and_imports"] = round(baseline["wall_seconds"] - baseline["stages"].get("total", 0.0), 2)
        out["baseline"] = parts
    return out


def rows_of(path: str) -> int:
    return sum(pq.read_metadata(os.path.join(path, f)).num_rows for f in os.listdir(path) if f.endswith(".parquet"))


def cross_check(root: str, day: dt.date, baseline_scores: str) -> dict:
    """Join nightshift's predictions with the baseline's on client_id; both must score the same clients."""
    ours = pd.read_parquet(os.path.join(root, "predictions", f"date={day.isoformat()}"), columns=["client_id", "score"])
    theirs = pd.read_parquet(baseline_scores)
    joined = ours.merge(theirs, on="client_id", how="outer", suffixes=("_nightshift", "_baseline"), indicator=True)
    both = joined[joined["_merge"] == "both"]
    diff = (both["score_nightshift"] - both["score_baseline"]).abs()
    result = {"rows_nightshift": len(ours), "rows_baseline": len(theirs), "rows_matched": len(both),
              "max_abs_score_diff": float(diff.max()) if len(both) else None}
    result["match"] = bool(len(ours) == len(theirs) == len(both) and diff.max() < 1e-9)
    return result


def baseline_and_cross_check(env: dict, root: str, clients: int, day: dt.date, result: dict, log) -> None:
    """The pandas script for `day` with the model nightshift trained, its scores joined with nightshift's."""
    log(f"[{clients}] baseline ...")
    scores = os.path.join(root, "baseline-scores.parquet")
    base = measure([sys.executable, os.path.join(BENCH, "baseline_pandas.py"), "--root", root,
                    "--date", day.isoformat(), "--model-dir", os.path.join(root, "models", D0.isoformat()),
                    "--db", os.path.join(root, "baseline.db"), "--scores-out", scores], env)
    inner = json.loads(base["stdout"].strip().splitlines()[-1])
    result["baseline"] = {"wall_seconds": round(base["wall_seconds"], 2),
                          "peak_rss_gib": round(base["peak_rss_bytes"] / GIB, 3),
                          "stages": {k: round(v, 2) for k, v in inner["timings"].items()}}
    result["cross_check"] = cross_check(root, day, scores)
    log(f"[{clients}] baseline: {result['baseline']['wall_seconds']} s; cross-check {result['cross_check']}")
    scored = rows_of(os.path.join(root, "predictions", f"date={day.isoformat()}"))
    result["cold"]["clients_per_second"] = round(rows_of(os.path.join(root, "predictions", f"date={D0}"))
                                                 / result["cold"]["wall_seconds"])
    result["steady"]["clients_per_second"] = round(scored / result["steady"]["wall_seconds"])
    result["baseline"]["clients_per_second"] = round(result["cross_check"]["rows_baseline"]
                                                     / result["baseline"]["wall_seconds"])
    result["ratios"] = {
        "steady_vs_baseline": round(result["steady"]["wall_seconds"] / result["baseline"]["wall_seconds"], 2),
        "cold_vs_baseline": round(result["cold"]["wall_seconds"] / result["baseline"]["wall_seconds"], 2),
    }
    result["stages"] = steady_stages(result["steady"], result["baseline"])


def redo_night(env: dict, day: dt.date) -> None:
    """Delete what a steady night makes (the new snapshot's and the new day's work, and all after), as bin/invalidate."""
    for args in (["ClientFeatures", "--date", day.isoformat()],
                 ["TransactionDaily", "--date", day.isoformat(), "--task-date", (day - DAY).isoformat()]):
        subprocess.run([sys.executable, "-m", "tasks.cli.invalidate", *args, "--downstream"], cwd=REPO, env=env,
                       check=True, capture_output=True)


def run_scale(clients: int, backfill_days: int, keep: bool, log, result: dict, save) -> None:
    """Generate the data of one scale point and run every scenario on it (backfill_days 0: no backfill, no no-op).

    Fills `result` as it goes and calls `save()` after every scenario, so a stopped run keeps what it measured.
    """
    root = os.path.join(BENCH, "data", f"clients-{clients}")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    env = {**os.environ, "LUIGI_CONFIG_PATH": write_config(root, f"sc://127.0.0.1:{free_port()}"),
           "PYTHONUNBUFFERED": "1"}
    # The same nights with a driver JVM of their own ([spark] master local[*]): the mode without a server.
    env_local = {**env, "LUIGI_CONFIG_PATH": write_config(root, "local[*]", "bench-local.cfg")}
    first, end = data_span(max(backfill_days, 1))
    days = (end - first).days + 1
    log(f"[{clients}] generating {days} days {first}..{end}")
    gen = measure([sys.executable, "-m", "nightshift.sample", "--root", root, "--end",
                   end.isoformat(), "--days", str(days), "--clients", str(clients), "--seed", "7",
                   "--label-lag", str(MODEL["label_lag_days"]), "--tx-per-client-day", str(TX_PER_CLIENT_DAY)], env)
    raw_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(os.path.join(root, "raw")) for f in fs)
    result.update({"clients": clients, "data": {"first_day": first.isoformat(), "last_day": end.isoformat(), "days": days,
                                           "raw_gib": round(raw_bytes / GIB, 3),
                                           "generate_seconds": round(gen["wall_seconds"], 1)}})
    save()
    steady_day = D0 + DAY
    backfill = (D0 + 2 * DAY, D0 + (2 + backfill_days) * DAY)
    plan = [
        ("cold", ["--date", D0.isoformat()]),
        ("steady", ["--date", steady_day.isoformat()]),
        ("backfill", ["--start", backfill[0].isoformat(), "--stop", backfill[1].isoformat()]),
        ("noop", ["--start", backfill[0].isoformat(), "--stop", backfill[1].isoformat()]),
    ]
    with ConnectServer(env, root) as server:
        result["connect_server_start_seconds"] = round(server.start_seconds, 2)
        log(f"[{clients}] Spark Connect server started in {server.start_seconds:.1f} s")
        for name, args in plan if backfill_days else plan[:2]:
            if name != "cold":
                log(f"[{clients}] {name}: waited {server.settle():.0f} s for the server's idle Python workers to exit")
            log(f"[{clients}] {name} ...")
            result[name] = night(env, root, name, *args, server=server)
            if name in ("backfill", "noop"):
                result[name]["days"] = backfill_days
            log(f"[{clients}] {name}: {result[name]['wall_seconds']} s, peak {result[name]['peak_rss_gib']} GiB "
                f"(the night's process tree alone {result[name]['peak_rss_gib_night']}, the server's "
                f"{result[name]['peak_rss_gib_server']})")
            save()
    # The pandas script runs with the server stopped: at 10M its 21 GiB and the resident server's 4 GiB do not fit
    # together in this machine's memory (the kernel killed the script).
    baseline_and_cross_check(env, root, clients, steady_day, result, log)
    save()
    log(f"[{clients}] steady_local ...")
    redo_night(env_local, steady_day)
    result["steady_local"] = night(env_local, root, "steady-local", "--date", steady_day.isoformat())
    result["ratios"]["steady_local_vs_baseline"] = round(result["steady_local"]["wall_seconds"]
                                                         / result["baseline"]["wall_seconds"], 2)
    result["stages_local"] = steady_stages(result["steady_local"], None)["steady"]
    log(f"[{clients}] steady_local: {result['steady_local']['wall_seconds']} s")
    save()
    if backfill_days:
        backfill_rows = sum(rows_of(os.path.join(root, "predictions", f"date={(backfill[0] + k * DAY).isoformat()}"))
                            for k in range(backfill_days))
        result["backfill"]["clients_per_second"] = round(backfill_rows / result["backfill"]["wall_seconds"])
        result["ratios"]["backfill_in_steady_days"] = round(result["backfill"]["wall_seconds"]
                                                            / result["steady"]["wall_seconds"], 2)
        result["ratios"]["backfill_vs_baseline_nights"] = round(
            result["backfill"]["wall_seconds"] / (backfill_days * result["baseline"]["wall_seconds"]), 2)
    result["peak_rss_gib"] = max(result[k]["peak_rss_gib"] for k in RUNS if k in result)
    if not keep:
        shutil.rmtree(root, ignore_errors=True)


# --- reporting ------------------------------------------------------------------------------
def machine() -> dict:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
        with open("/proc/meminfo") as fh:
            mem_kib = int(re.search(r"MemTotal:\s+(\d+)", fh.read()).group(1))
    except (OSError, AttributeError):
        mem_kib = 0
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    import pyspark
    import sklearn
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_kib / 1024 ** 2, 1),
            "os": platform.platform(), "python": platform.python_version(), "pyspark": pyspark.__version__,
            "pandas": pd.__version__, "scikit-learn": sklearn.__version__, "java": java[0] if java else "",
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def evaluate_targets(results: dict) -> list[dict]:
    """Each target with the measured figure and met / missed (or not measured at that scale)."""
    by_scale = {r["clients"]: r for r in results["scales"]}
    rows = []

    def add(name, scale, measured, limit, unit):
        rows.append({"target": name, "clients": scale, "measured": measured, "limit": limit, "unit": unit,
                     "status": "not measured" if measured is None else ("met" if measured <= limit else "missed")})

    for scale, key in ((100_000, "steady_vs_baseline_100k"), (1_000_000, "steady_vs_baseline_1m"),
                       (10_000_000, "steady_vs_baseline_10m")):
        r = by_scale.get(scale)
        add("steady-state night / pandas baseline", scale, r and r.get("ratios", {}).get("steady_vs_baseline"),
            TARGETS[key], "x")
    for scale, r in sorted(by_scale.items()):
        add(f"no-op {r['backfill']['days']}-day rerun" if "noop" in r else "no-op rerun", scale,
            r["noop"]["wall_seconds"] if "noop" in r else None, TARGETS["noop_seconds"], "s")
    for scale, r in sorted(by_scale.items()):
        add(f"backfill {r['backfill']['days']} days / one steady-state day" if "backfill" in r else "backfill", scale,
            r.get("ratios", {}).get("backfill_in_steady_days"), TARGETS["backfill_in_steady_days"], "x")
    for scale, key in ((1_000_000, "peak_gib_1m"), (10_000_000, "peak_gib_10m")):
        r = by_scale.get(scale)
        peak = r and max((r[k]["peak_rss_gib"] for k in RUNS if k in r), default=None)
        add("peak RSS of the process tree", scale, peak, TARGETS[key], "GiB")
    imports = [r["steady"]["import_seconds"] for r in by_scale.values() if "import_seconds" in r.get("steady", {})]
    add("`import tasks` (steady night's process)", min(by_scale, default=0), max(imports, default=None),
        TARGETS["import_seconds"], "s")
    return rows


def _clients(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else f"{n // 1000}k"


def format_table(results: dict) -> str:
    """The results table's markdown: one row per scale and scenario, then the targets."""
    lines = ["| clients | run | wall s | peak RSS GiB | clients/s | vs baseline |",
             "| ---: | --- | ---: | ---: | ---: | ---: |"]
    for r in results["scales"]:
        base = r.get("baseline", {}).get("wall_seconds")
        for name in (*RUNS, "baseline"):
            if name not in r:
                continue
            s = r[name]
            label = {"backfill": f"backfill {s.get('days')} days", "noop": f"no-op rerun of {s.get('days')} days",
                     "baseline": "pandas baseline (one night)", "steady": "steady-state night",
                     "steady_local": "steady-state night, own JVM (local[*])",
                     "cold": "cold night (incl. training)"}[name]
            ratio = "" if name in ("noop", "baseline") or not base else f"{s['wall_seconds'] / base:.2f}x"
            if name == "backfill" and base:
                ratio = f"{s['wall_seconds'] / (r['backfill']['days'] * base):.2f}x of {r['backfill']['days']} nights"
            cps = s.get("clients_per_second", "")
            lines.append(f"| {_clients(r['clients'])} | {label} | {s['wall_seconds']:.1f} | {s['peak_rss_gib']:.2f} "
                         f"| {cps if cps == '' else f'{cps:,}'} | {ratio} |")
    lines += ["", "| target | clients | limit | measured | |", "| --- | ---: | ---: | ---: | --- |"]
    for t in results["targets"]:
        measured = "-" if t["measured"] is None else f"{t['measured']:.2f} {t['unit']}"
        lines.append(f"| {t['target']} | {_clients(t['clients'])} | <= {t['limit']:g} {t['unit']} | {measured} "
                     f"| {t['status']} |")
    staged = [r for r in results["scales"] if "stages" in r]
    if staged:
        lines += ["", "Seconds per stage of the steady-state night (JVM start taken out of the task that paid it), "
                  "and of the baseline:", "",
                  "| stage | " + " | ".join(_clients(r["clients"]) for r in staged) + " |",
                  "| --- |" + " ---: |" * len(staged)]
        for stage in STEADY_STAGES:
            lines.append(f"| {stage.replace('_', ' ')} | "
                         + " | ".join(f"{r['stages']['steady'].get(stage, 0.0):.1f}" for r in staged) + " |")
        lines.append("| **steady night, wall** | " + " | ".join(f"**{r['steady']['wall_seconds']:.1f}**" for r in staged)
                     + " |")
        if all("stages_local" in r for r in staged):
            lines.append("| *own JVM (local[*]): JVM start* | "
                         + " | ".join(f"*{r['stages_local'].get('jvm_start', 0.0):.1f}*" for r in staged) + " |")
            lines.append("| *own JVM (local[*]): steady night, wall* | "
                         + " | ".join(f"*{r['steady_local']['wall_seconds']:.1f}*" for r in staged) + " |")
        for part in ("features", "score", "publish", "python_and_imports"):
            lines.append(f"| baseline: {part.replace('_', ' ')} | "
                         + " | ".join(f"{r['stages'].get('baseline', {}).get(part, 0.0):.1f}" for r in staged) + " |")
        lines.append("| **baseline, wall** | " + " | ".join(f"**{r['baseline']['wall_seconds']:.1f}**" for r in staged)
                     + " |")
    return "\n".join(lines)


def write_table(table: str, results: dict, path: str) -> None:
    """Replace what sits between the <!-- bench:start --> and <!-- bench:end --> markers of `path`."""
    with open(path) as fh:
        text = fh.read()
    m = results["machine"]
    block = (f"<!-- bench:start -->\nMeasured {results['finished'][:16]} UTC on {m['cores']} cores ({m['cpu']}), "
             f"{m['memory_gib']} GiB RAM, load average {m['load_average_at_start'][0]} at start; "
             f"`make bench` took {results['bench_seconds'] / 60:.1f} min.\n\n{table}\n<!-- bench:end -->")
    if "<!-- bench:start -->" in text:
        text = re.sub(r"<!-- bench:start -->.*?<!-- bench:end -->", lambda _: block, text, flags=re.S)
    else:
        raise SystemExit(f"{path}: no <!-- bench:start --> ... <!-- bench:end --> markers for the results table")
    with open(path, "w") as fh:
        fh.write(text)


def write_svg(results: dict, path: str) -> None:
    """Stacked bars: seconds per stage of every run, one row per scale and run."""
    palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
               "#9c755f", "#bab0ac"]
    families = []
    for r in results["scales"]:
        for name in RUNS:
            families += [f for f in r.get(name, {"stages": {}})["stages"] if f not in families]
    families.append("outside tasks")
    colour = {f: palette[i % len(palette)] for i, f in enumerate(families)}
    rows = []
    for r in results["scales"]:
        for name in (n for n in RUNS if n in r):
            parts = [(f, e["seconds"]) for f, e in r[name]["stages"].items()]
            parts.append(("outside tasks", max(r[name]["outside_tasks_seconds"], 0)))
            rows.append((f"{_clients(r['clients'])} {name}", parts, r[name]["wall_seconds"]))
        if "baseline" in r:
            rows.append((f"{_clients(r['clients'])} baseline", [(k, v) for k, v in r["baseline"]["stages"].items()
                                                              if k != "total"], r["baseline"]["wall_seconds"]))
    for k in ("features", "score", "publish"):
        colour.setdefault(k, "#333333" if k == "features" else "#777777" if k == "score" else "#aaaaaa")
    longest = max(w for _, _, w in rows) or 1
    width, left, bar = 900, 150, 18
    scale = (width - left - 80) / longest
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{40 + len(rows) * 26 + 22 * len(colour)}' "
           "font-family='sans-serif' font-size='12'>",
           "<text x='10' y='18' font-size='14'>nightshift: seconds per stage (run() time; rest = outside tasks)</text>"]
    for i, (label, parts, wall) in enumerate(rows):
        y, x = 32 + i * 26, left
        out.append(f"<text x='10' y='{y + 13}'>{label}</text>")
        for family, seconds in parts:
            out.append(f"<rect x='{x:.1f}' y='{y}' width='{seconds * scale:.1f}' height='{bar}' "
                       f"fill='{colour[family]}'><title>{family}: {seconds:.1f} s</title></rect>")
            x += seconds * scale
        out.append(f"<text x='{x + 4:.1f}' y='{y + 13}'>{wall:.1f} s</text>")
    y = 40 + len(rows) * 26
    for i, (family, c) in enumerate(colour.items()):
        out.append(f"<rect x='10' y='{y + i * 22}' width='14' height='14' fill='{c}'/>"
                   f"<text x='30' y='{y + i * 22 + 12}'>{family}</text>")
    out.append("</svg>")
    with open(path, "w") as fh:
        fh.write("\n".join(out))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="100000,1000000", help="comma-separated client counts")
    parser.add_argument("--10m", dest="ten_million", action="store_true", help="add the 10M-client scale point")
    parser.add_argument("--backfill-days", type=int, default=30)
    parser.add_argument("--backfill-up-to", type=int, default=100_000, metavar="CLIENTS",
                        help="measure backfill and no-op only at scale points up to this many clients (default 100k: "
                             "a 30-day backfill at 1M alone takes about 30 minutes here)")
    parser.add_argument("--keep-data", action="store_true", help="leave bench/data/ in place")
    parser.add_argument("--out", default=os.path.join(BENCH, "results", "latest.json"))
    parser.add_argument("--no-readme", action="store_true",
                        help="do not rewrite the results table in docs/benchmark.md")
    parser.add_argument("--report-only", action="store_true",
                        help="only rewrite the docs/benchmark.md table and the SVG from the --out JSON of an earlier run")
    args = parser.parse_args(argv)
    if args.report_only:
        with open(args.out) as fh:
            results = json.load(fh)
        return report(results, args)
    scales = [int(s) for s in args.scales.split(",") if s]
    if args.ten_million:
        scales.append(10_000_000)

    started = time.perf_counter()
    log = lambda msg: print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)  # noqa: E731
    results = {"started": dt.datetime.now(dt.timezone.utc).isoformat(), "machine": machine(),
               "setup": {"score_date_cold": D0.isoformat(), "tx_per_client_day": TX_PER_CLIENT_DAY,
                         "window_days": WINDOW_DAYS, "model": MODEL, "workers": 1,
                         "spark": "[spark] master = sc://127.0.0.1:PORT, a Spark Connect server (bin/spark-server, "
                                  "local[*]) started once per scale point; steady_local: local[*], a JVM per run"},
               "scales": []}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)

    def save():
        results["targets"] = evaluate_targets(results)
        results["finished"] = dt.datetime.now(dt.timezone.utc).isoformat()
        results["bench_seconds"] = round(time.perf_counter() - started, 1)
        results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=2)

    for clients in scales:
        with_backfill = args.backfill_up_to is None or clients <= args.backfill_up_to
        result = {"clients": clients}
        results["scales"].append(result)
        try:
            run_scale(clients, args.backfill_days if with_backfill else 0, args.keep_data, log, result, save)
        except RuntimeError as exc:
            # one failed scale point must not lose the others; the error is in the JSON and the exit code
            log(f"[{clients}] FAILED: {exc}")
            result["error"] = str(exc)[-2000:]
            results.setdefault("errors", []).append({"clients": clients, "error": result["error"]})
        save()
    return report(results, args)


def svg_path(args) -> str:
    """stages.svg beside the --out JSON, the one this page shows; with --no-readme, <out>.svg, so that a side run
    (bench/results/10m.json) does not overwrite it."""
    if args.no_readme:
        return os.path.splitext(args.out)[0] + ".svg"
    return os.path.join(os.path.dirname(args.out), "stages.svg")


def report(results: dict, args) -> int:
    table = format_table(results)
    if results["scales"]:
        write_svg(results, svg_path(args))
    if results["scales"] and not args.no_readme:
        write_table(table, results, TABLE_PAGE)
    print(table)
    print(f"results: {args.out} ({results['bench_seconds'] / 60:.1f} min)")
    return 1 if results.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())

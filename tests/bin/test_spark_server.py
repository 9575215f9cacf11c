"""A real Spark Connect server run by bin/spark-server: nights as its clients, progress, a server that is down."""
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd

from tasks.cli.spark_server import python_processes, server_settings
from tests.bin.conftest import free_port
from tests.conftest import REPO, SCORE_DATE

# A Spark job long enough to be seen running, through the task's progress reporter, on the configured master.
PROGRESS = """
import json, sys, time
from tasks import spark

class Task:
    task_id = "probe"
    def __init__(self): self.messages = []
    def set_status_message(self, message): self.messages.append(message)
    def set_progress_percentage(self, percentage): pass

def slow(batches):
    for batch in batches:
        time.sleep(0.5)
        yield batch

task = Task()
with spark.SparkProgress(task, interval=0.1):
    session = spark.session()
    rows = session.range(0, 40, numPartitions=8).mapInPandas(slow, "id long").count()
spark.stop()
print(json.dumps({"rows": rows, "messages": task.messages, "connect": spark._is_connect_session(session)}))
"""


def live_group_members(pgid: int) -> list[str]:
    """Command lines of the live (not zombie) processes in process group `pgid`."""
    members = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{name}/stat").read()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(open(f"/proc/{name}/cmdline", "rb").read().replace(b"\0", b" ").decode()[:80])
        except (OSError, ValueError):
            continue
    return members


def predictions(root) -> pd.Series:
    frame = pd.read_parquet(root / "predictions" / f"date={SCORE_DATE}", columns=["client_id", "score"])
    return frame.set_index("client_id")["score"].sort_index()


def test_run_daily_starts_the_server_and_its_night_scores_as_a_local_one(ops, scored_root, scored_template):
    url = f"sc://127.0.0.1:{free_port()}"
    ops.set("spark", "master", url)
    ops.set("spark", "server_master", "local[2]")
    ops.set("spark", "server_dir", ops.var / "spark-server")
    pidfile = ops.var / "spark-server" / "spark-server.pid"
    assert ops.run("spark-server", "status").returncode == 3
    for args in (["ClientFeatures", "--date", SCORE_DATE],
                 ["TransactionDaily", "--date", SCORE_DATE, "--task-date", SCORE_DATE - dt.timedelta(days=1)]):
        assert ops.run("invalidate", *args, "--downstream").returncode == 0
    assert not (scored_root / "predictions" / f"date={SCORE_DATE}").exists()
    try:
        night = ops.run("run-daily", "--date", SCORE_DATE)
        assert night.returncode == 0, night.stdout + night.stderr
        assert "spark-server" not in night.stderr, night.stderr  # started without a warning
        status = ops.run("spark-server", "status")
        assert status.returncode == 0 and f"running: {url}" in status.stdout
        pid = int(pidfile.read_text())
        assert b"-XX:+UseParallelGC" in open(f"/proc/{pid}/cmdline", "rb").read(), "the server's JVM, as started"
        workers, _ = python_processes(pid)
        assert workers >= 1, "the night's Python functions ran on the server's workers"
        pd.testing.assert_series_equal(predictions(scored_root), predictions(scored_template), rtol=0, atol=1e-12)

        probe = subprocess.run([sys.executable, "-c", PROGRESS], cwd=REPO, capture_output=True, text=True,
                               env={**os.environ, "LUIGI_CONFIG_PATH": str(ops.path)}, timeout=300)
        assert probe.returncode == 0, probe.stderr
        seen = json.loads(probe.stdout.strip().splitlines()[-1])
        assert seen["connect"] and seen["rows"] == 40
        assert any("tasks done" in m for m in seen["messages"]), seen["messages"]
        assert seen["messages"][-1].startswith("done after") and "1 Spark job(s)" in seen["messages"][-1]

        # Luigi's --workers 2 forks a process per task: each opens its own session on the server.
        for args in (["ClientFeatures", "--date", SCORE_DATE],
                     ["TransactionDaily", "--date", SCORE_DATE, "--task-date", SCORE_DATE - dt.timedelta(days=1)]):
            assert ops.run("invalidate", *args, "--downstream").returncode == 0
        forked = subprocess.run([str(REPO / ".venv" / "bin" / "luigi"), "--module", "tasks", "DailyScoring",
                                 "--date", str(SCORE_DATE), "--local-scheduler", "--workers", "2"], cwd=REPO,
                                capture_output=True, text=True, env={**os.environ, "LUIGI_CONFIG_PATH": str(ops.path)},
                                timeout=600)
        assert forked.returncode == 0, forked.stderr[-3000:]
        pd.testing.assert_series_equal(predictions(scored_root), predictions(scored_template), rtol=0, atol=1e-12)

        # A static SQL setting only the server's start applies: a run accepts the value the server runs with
        # (Spark's default here) and names the key and the restart for another, instead of Spark's refusal.
        def open_session_with(max_entries: int) -> subprocess.CompletedProcess:
            ops.set("spark", "conf", f"spark.sql.shuffle.partitions=8|spark.sql.codegen.cache.maxEntries={max_entries}")
            opened = "from tasks import spark; print(spark.session().range(3).count())"
            return subprocess.run([sys.executable, "-c", opened], cwd=REPO, capture_output=True, text=True,
                                  env={**os.environ, "LUIGI_CONFIG_PATH": str(ops.path)}, timeout=120)

        same = open_session_with(100)
        assert same.returncode == 0 and same.stdout.split()[-1] == "3", same.stderr[-2000:]
        other = open_session_with(333)
        assert other.returncode != 0
        assert (f"ConfigurationError: [spark] conf: spark.sql.codegen.cache.maxEntries=333 is a static Spark "
                f"setting, applied when the server starts, and the server at {url} runs with 100: restart it "
                f"(bin/spark-server restart)") in other.stderr, other.stderr[-2000:]

        again = ops.run("spark-server", "start")
        assert again.returncode == 0 and "already running" in again.stdout
    finally:
        stopped = ops.run("spark-server", "stop", timeout=120)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stderr
    assert not pidfile.exists()
    assert live_group_members(pid) == [], "stop takes the server's Python daemons and workers with it"


def test_the_server_runs_the_throughput_collector_unless_spark_conf_picks_one(overlay):
    options = server_settings(15002)["spark.driver.extraJavaOptions"].split()
    assert "-XX:+UseParallelGC" in options and "-XX:TieredStopAtLevel=1" not in options
    assert any(option.startswith("-Dlog4j2.configurationFile=") for option in options)
    overlay.set("spark", "conf", "spark.driver.extraJavaOptions=-XX:+UseG1GC -XX:+PrintGCDetails")
    assert server_settings(15002)["spark.driver.extraJavaOptions"] == "-XX:+UseG1GC -XX:+PrintGCDetails"


def test_a_night_whose_server_is_down_fails_at_once_naming_it(ops, scored_root):
    url = f"sc://127.0.0.1:{free_port()}"
    ops.set("spark", "master", url)
    assert ops.run("invalidate", "ClientFeatures", "--date", SCORE_DATE, "--downstream").returncode == 0
    # pyspark's own client would retry for minutes; the task says why in one line instead (timeout: a hang fails).
    run = subprocess.run([str(REPO / ".venv" / "bin" / "luigi"), "--module", "tasks", "DailyScoring",
                          "--date", str(SCORE_DATE), "--local-scheduler"], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "LUIGI_CONFIG_PATH": str(ops.path)}, timeout=120)
    assert run.returncode == 30, run.stderr[-2000:]
    assert (f"ServiceUnavailable: [spark] master = {url}: no Spark Connect server answers (Connection refused); "
            f"start it with bin/spark-server start") in run.stderr
    assert "Traceback" not in run.stderr
    assert not (scored_root / "features" / "clients" / f"date={SCORE_DATE}").exists()


def test_a_settings_typo_in_the_connect_url_is_refused_before_any_work(ops, root):
    ops.set("spark", "master", "sc:/127.0.0.1:15002")
    done = ops.run("status", "--check-config")
    assert done.returncode != 0
    assert "[spark] master" in done.stdout + done.stderr and "sc://host:port" in done.stdout + done.stderr



LOST = """
import sys, time
from tasks import spark

def slow(batches):
    for batch in batches:
        time.sleep(60)
        yield batch

class Probe(spark.SparkTask):
    def run(self):
        session = spark.session()
        print("started", flush=True)
        session.range(0, 4, numPartitions=2).mapInPandas(slow, "id long").count()

started = time.monotonic()
try:
    Probe().run()
except Exception as exc:
    print(f"{time.monotonic() - started:.0f}s {type(exc).__name__}: {exc}", flush=True)
"""


def test_a_server_lost_mid_task_fails_the_task_in_one_line_within_seconds(ops):
    url = serve(ops)
    pid = int((ops.var / "spark-server" / "spark-server.pid").read_text())
    probe = subprocess.Popen([sys.executable, "-c", LOST], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, "LUIGI_CONFIG_PATH": str(ops.path)})
    try:
        assert probe.stdout.readline().strip() == "started"
        time.sleep(3)  # the job is running on the server
        os.killpg(pid, signal.SIGKILL)  # the server dies: the JVM and its Python workers
        # pyspark alone would retry for 10 minutes; the timeout fails a hang.
        out, err = probe.communicate(timeout=240)
    finally:
        probe.kill()
        ops.run("spark-server", "stop")
    line = out.strip().splitlines()[-1]
    assert f"ServiceUnavailable: the Spark Connect server {url[len('sc://'):]} went away" in line, out + err[-2000:]
    assert "went away while Probe() ran" in line and "bin/spark-server start" in line
    assert "debug_error_string" not in line


# One run's view of the server: its session, a folder's rows, and whether a Python worker starts with the
# scikit-learn modules a model's pickle references already imported.
RUN = """
import json, sys
import pandas as pd
from tasks import spark

ESTIMATORS = ("sklearn.pipeline", "sklearn.compose", "sklearn.impute", "sklearn.linear_model", "sklearn.preprocessing")

def loaded(batches):
    for _ in batches:
        yield pd.DataFrame({"sklearn": [all(name in sys.modules for name in ESTIMATORS)]})

session = spark.session()
rows = session.read.parquet(sys.argv[1]).count()
warm = session.range(1).mapInPandas(loaded, "sklearn boolean").collect()[0][0]
print(json.dumps({"session": session.session_id, "rows": rows, "warm": warm}))
spark.stop()
"""


def write_folder(folder, rows: int, name: str) -> None:
    """A folder of parquet as a task writes one: rebuilt whole, under a new file name."""
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    pd.DataFrame({"n": range(rows)}).to_parquet(folder / f"part-{name}.parquet")


def one_run(ops, folder) -> dict:
    done = subprocess.run([sys.executable, "-c", RUN, str(folder)], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "LUIGI_CONFIG_PATH": str(ops.path)}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def serve(ops, *conf: str) -> str:
    """Start bin/spark-server on a free port with the tests' settings and `conf`; its sc:// URL."""
    url = f"sc://127.0.0.1:{free_port()}"
    ops.set("spark", "master", url)
    ops.set("spark", "server_master", "local[2]")
    ops.set("spark", "server_dir", ops.var / "spark-server")
    if conf:
        ops.set("spark", "conf", "|".join([ops.values["spark"]["conf"], *conf]))
    started = ops.run("spark-server", "start", timeout=180)
    assert started.returncode == 0, started.stderr
    return url


def test_runs_keep_one_session_whose_workers_start_warm_and_read_a_rebuilt_folder_afresh(ops, tmp_path):
    folder = tmp_path / "table"
    serve(ops)
    try:
        write_folder(folder, 10, "a")
        first = one_run(ops, folder)
        write_folder(folder, 7, "b")  # the first run's files are gone: a stale listing would fail or count 10
        second = one_run(ops, folder)
    finally:
        ops.run("spark-server", "stop")
    assert (first["rows"], second["rows"]) == (10, 7)
    assert first["session"] == second["session"], "the second run goes on in the first run's session"
    assert first["warm"] and second["warm"], "workers are forks of a daemon that imported the estimators"


def test_a_server_that_cannot_keep_sessions_gives_each_run_a_new_one(ops, tmp_path):
    folder = tmp_path / "table"
    write_folder(folder, 5, "a")
    # A server as Spark ships it: plans cached per session, closed sessions remembered.
    serve(ops, "spark.connect.session.planCache.enabled=true",
          "spark.connect.session.manager.closedSessionsTombstonesSize=1000")
    try:
        first = one_run(ops, folder)
        # The session runs would have kept, closed since (timed out): opening it again fails on such a server.
        closer = ("from pyspark.sql import SparkSession\nfrom tasks import config, spark\n"
                  "conf = spark.settings(config.spark())\nsid = spark.kept_session_id(conf)\n"
                  "SparkSession.builder.remote(conf['spark.master'] + '/;session_id=' + sid).create().stop()\nprint(sid)")
        closed = subprocess.run([sys.executable, "-c", closer], cwd=REPO, capture_output=True, text=True,
                                env={**os.environ, "LUIGI_CONFIG_PATH": str(ops.path)}, timeout=120)
        assert closed.returncode == 0, closed.stderr[-2000:]
        second = one_run(ops, folder)
    finally:
        ops.run("spark-server", "stop")
    assert first["rows"] == second["rows"] == 5
    kept = closed.stdout.strip()
    assert len({first["session"], second["session"], kept}) == 3

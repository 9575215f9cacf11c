"""Run a Spark Connect server on 127.0.0.1 for the nightly runs: start, stop, restart, status.

    bin/spark-server start|stop|restart|status [--quiet]

With `[spark] master = sc://127.0.0.1:PORT`, every run is a thin client of this long-lived server instead of
launching its own JVM: the night pays no JVM start, no class loading and runs on code the JIT compiled on
earlier nights. The server listens on the port of that URL (15002 when `[spark] master` is not an sc:// URL,
so it can be started before the switch). It runs Spark with `[spark] server_master` (default local[*]), the
settings nightshift gives its own sessions and `[spark] conf`. Its pid file and log (spark-server.out) are in
`[spark] server_dir` (var/spark-server). Configuration is luigi.cfg in the repo root overlaid by
LUIGI_CONFIG_PATH, as for every run.

Runs keep one session on the server from night to night (tasks.spark.kept_session_id): its compiled code and
its Python daemon, which imports the scoring libraries once (nightshift.daemon), serve every night. A change of
the nightshift code, the installed packages or the Spark settings opens another session, so workers never run
stale code; restart the server after upgrading pyspark or Java. Spark keeps the Python daemon of an ended session
(about 250 MB) until the server stops; crontab.example restarts the server weekly.

Exit status: 0 done / running and answering; 1 could not start or stop; 3 not running (status).
"""
import argparse
import os
import re
import socket
import sys

from tasks import config
from tasks.cli.service import Service, descendants, fail, rss, say
from tasks.spark import CONNECT_PORT, KEEPS_SESSIONS, connect_address, is_connect, settings

HOST = "127.0.0.1"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0
SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"


class Layout:
    """Where this server listens and keeps its pid file and log, from the configuration."""

    def __init__(self):
        cfg = config.spark()
        self.port = connect_address(cfg.master)[1] if is_connect(cfg.master) else CONNECT_PORT
        self.url = f"sc://{HOST}:{self.port}"
        folder = os.path.abspath(cfg.server_dir)
        self.service = Service("Spark Connect server", os.path.join(folder, "spark-server.pid"),
                               os.path.join(folder, "spark-server.out"), SERVER_CLASS.encode())


def server_settings(port: int) -> dict[str, str]:
    """The server's Spark settings: the runs' own (local master, the venv's Python, the session zone, [spark] conf)
    with the server's master and gRPC address; full JIT, since the server lives for weeks.

    Runs keep one session from night to night (tasks.spark.kept_session_id): the server keeps sessions safely
    (KEEPS_SESSIONS), for two days without a run, and each session's Python daemon imports the scoring libraries
    once (nightshift.daemon) instead of every worker every night. `[spark] conf` can override any of these.
    """
    cfg = config.spark()
    conf = {**KEEPS_SESSIONS, "spark.connect.session.manager.defaultSessionTimeout": "48h",
            "spark.python.daemon.module": "nightshift.daemon", **settings(cfg)}
    conf.update({
        "spark.master": cfg.server_master,
        "spark.app.name": "nightshift (Spark Connect server)",
        "spark.connect.grpc.binding.address": HOST,
        "spark.connect.grpc.binding.port": str(port),
    })
    # Full JIT: C1 alone made a 100k-client night twice as slow on the server. The throughput collector: G1's
    # concurrent marking and refinement cost the server 5-6 s of CPU per three 100k-client nights, ParallelGC 1 s,
    # and a batch server has no pause target to keep.
    options = conf.get("spark.driver.extraJavaOptions", "").replace("-XX:TieredStopAtLevel=1", "").strip()
    if not re.search(r"-XX:\+Use\w+GC\b", options):  # unless [spark] conf picks a collector
        options += " -XX:+UseParallelGC"
    conf["spark.driver.extraJavaOptions"] = options.strip()
    return conf


def command(port: int) -> tuple[list[str], dict[str, str]]:
    """spark-submit of the Connect server from the installed pyspark, and its environment."""
    import pyspark

    home = os.path.dirname(pyspark.__file__)
    conf = server_settings(port)
    cmd = [os.path.join(home, "bin", "spark-submit"), "--class", SERVER_CLASS,
           "--name", conf.pop("spark.app.name"), "--master", conf.pop("spark.master"),
           "--driver-memory", conf.pop("spark.driver.memory")]
    for key, value in conf.items():
        cmd += ["--conf", f"{key}={value}"]
    env = {**os.environ, "SPARK_HOME": home, "PYSPARK_PYTHON": conf["spark.pyspark.python"],
           "PYSPARK_DRIVER_PYTHON": sys.executable}
    return cmd, env


def answers(port: int, timeout: float = 1.0) -> bool:
    """True when something accepts connections on the server's port."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def python_processes(pid: int) -> tuple[int, int]:
    """How many Python processes the server has forked (daemons and workers) and their summed RSS in bytes."""
    count = total = 0
    for child in descendants(pid):
        try:
            with open(f"/proc/{child}/cmdline", "rb") as fh:
                if b"pyspark" not in fh.read():
                    continue
        except OSError:
            continue
        count, total = count + 1, total + rss(child)
    return count, total


def start(layout: Layout, quiet: bool) -> int:
    cmd, env = command(layout.port)
    pid, why = layout.service.start(cmd, lambda: answers(layout.port), START_TIMEOUT, env=env)
    if not pid:
        return fail("bin/spark-server", f"{layout.url}: {why}")
    if why:
        say(quiet, f"Spark Connect server {why}: {layout.url} (pid {pid})")
        return 0
    say(quiet, f"Spark Connect server running: {layout.url} (pid {pid})\n  log     {layout.service.logfile}\n"
               f"  use it  [spark] master = {layout.url}")
    return 0


def stop(layout: Layout, quiet: bool) -> int:
    # The whole process group: the JVM and the Python daemons and workers it forked.
    pid, why = layout.service.stop(STOP_TIMEOUT, group=True)
    if why:
        return fail("bin/spark-server", why)
    say(quiet, f"Spark Connect server stopped (pid {pid})" if pid else "Spark Connect server not running")
    return 0


def status(layout: Layout, quiet: bool) -> int:
    pid = layout.service.running_pid()
    if not answers(layout.port):
        say(quiet, f"Spark Connect server not answering on {layout.url}"
                   + (f" (pid {pid} alive)" if pid else " (not running)"))
        return 3
    say(quiet, f"Spark Connect server running: {layout.url}"
               + (f" (pid {pid})" if pid else " (not started by bin/spark-server)"))
    if pid and not quiet:
        count, rss = python_processes(pid)
        print(f"  python  {count} process(es), {rss / 2 ** 20:.0f} MiB\n  log     {layout.service.logfile}")
    return 0


def restart(layout: Layout, quiet: bool) -> int:
    return stop(layout, quiet) or start(layout, quiet)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/spark-server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop", "restart", "status"])
    parser.add_argument("--quiet", action="store_true", help="Print nothing; the exit status tells.")
    args = parser.parse_args(argv)
    layout = Layout()
    return {"start": start, "stop": stop, "restart": restart, "status": status}[args.action](layout, args.quiet)


if __name__ == "__main__":
    raise SystemExit(main())

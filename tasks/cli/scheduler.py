"""Run the central Luigi scheduler (luigid) on 127.0.0.1: start, stop, status.

    bin/scheduler start|stop|status [--quiet]

The port is `[core] default_scheduler_port` (8082). The state file is `[scheduler] state_path`
(var/luigid-state.pickle); the pid file (luigid.pid) and the logs (log/) sit in the same folder.
Task history goes to `[task_history] db_connection` (SQLite under var/) when
`[scheduler] record_task_history` is true. Configuration is luigi.cfg in the working directory (bin/scheduler
runs from the repo root) overlaid by LUIGI_CONFIG_PATH, exactly as luigid and the workers read it: luigid
starts in the same directory.

Exit status: 0 done / running and answering; 1 could not start or stop; 3 not running (status).
"""
import argparse
import json
import os
import shutil
import sys
import urllib.parse
import urllib.request

import luigi.configuration

from tasks.cli.service import Service, fail, say

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0


class Layout:
    """Where this luigid's port, state, pid file, logs and history are, from the configuration."""

    def __init__(self):
        cfg = luigi.configuration.get_config()
        self.port = cfg.getint("core", "default_scheduler_port", cfg.getint("core", "default-scheduler-port", 8082))
        self.state = os.path.abspath(cfg.get("scheduler", "state_path", "var/luigid-state.pickle"))
        folder = os.path.dirname(self.state)
        self.pidfile = os.path.join(folder, "luigid.pid")
        self.logdir = os.path.join(folder, "log")
        self.history = cfg.get("task_history", "db_connection", "") if cfg.getboolean(
            "scheduler", "record_task_history", False) else ""
        self.url = f"http://{HOST}:{self.port}"


def luigid_command() -> str:
    """The luigid installed beside this Python (the project's venv), else the first on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "luigid")
    return beside if os.access(beside, os.X_OK) else shutil.which("luigid") or "luigid"


def answers(url: str, timeout: float = 3.0) -> bool:
    """True when a Luigi scheduler answers its health check (HEAD / -> 204) at `url`."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url + "/", method="HEAD"), timeout=timeout) as reply:
            return reply.status in (200, 204)
    except OSError:
        return False


def service(layout: Layout) -> Service:
    return Service("luigid", layout.pidfile, os.path.join(layout.logdir, "luigid.out"), b"luigid")


def start(layout: Layout, quiet: bool) -> int:
    os.makedirs(layout.logdir, exist_ok=True)
    if layout.history.startswith("sqlite:///"):
        os.makedirs(os.path.dirname(os.path.abspath(layout.history[len("sqlite:///"):])) or ".", exist_ok=True)
    cmd = [luigid_command(), "--address", HOST, "--port", str(layout.port),
           "--state-path", layout.state, "--logdir", layout.logdir]
    pid, why = service(layout).start(cmd, lambda: answers(layout.url, timeout=1.0), START_TIMEOUT)
    if not pid:
        return fail("bin/scheduler", f"{layout.url}: {why}")
    if why:
        say(quiet, f"luigid {why}: {layout.url} (pid {pid})")
        return 0
    say(quiet, f"luigid running: {layout.url} (pid {pid})\n"
               f"  state   {layout.state}\n  logs    {layout.logdir}\n"
               f"  history {layout.history or 'off ([scheduler] record_task_history = false)'}")
    return 0


def stop(layout: Layout, quiet: bool) -> int:
    # luigid writes its state file on SIGTERM, then exits
    pid, why = service(layout).stop(STOP_TIMEOUT)
    if why:
        return fail("bin/scheduler", why)
    say(quiet, f"luigid stopped (pid {pid}); state saved in {layout.state}" if pid else "luigid not running")
    return 0


def task_counts(url: str) -> dict[str, int]:
    counts = {}
    for status in ("RUNNING", "PENDING", "FAILED", "DONE", "DISABLED"):
        query = urllib.parse.quote(json.dumps({"status": status, "upstream_status": "", "search": ""}))
        with urllib.request.urlopen(f"{url}/api/task_list?data={query}", timeout=5) as reply:
            response = json.load(reply)["response"]
        counts[status] = response.get("num_tasks", len(response)) if isinstance(response, dict) else len(response)
    return counts


def status(layout: Layout, quiet: bool) -> int:
    pid = service(layout).running_pid()
    if not answers(layout.url):
        say(quiet, f"luigid not answering on {layout.url}" + (f" (pid {pid} alive)" if pid else " (not running)"))
        return 3
    say(quiet, f"luigid running: {layout.url}" + (f" (pid {pid})" if pid else " (not started by bin/scheduler)"))
    if not quiet:
        try:
            counts = task_counts(layout.url)
            print("  tasks   " + ", ".join(f"{n} {s.lower()}" for s, n in counts.items()))
        except (OSError, ValueError, KeyError):
            pass
        print(f"  state   {layout.state}\n  logs    {layout.logdir}\n  history {layout.history or 'off'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/scheduler", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--quiet", action="store_true", help="Print nothing; the exit status tells.")
    args = parser.parse_args(argv)
    layout = Layout()
    return {"start": start, "stop": stop, "status": status}[args.action](layout, args.quiet)


if __name__ == "__main__":
    raise SystemExit(main())

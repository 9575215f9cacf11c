"""A long-lived local service started by a bin/ tool: its pid file, its log, starting it detached, stopping it.

bin/scheduler (luigid) and bin/spark-server (the Spark Connect server) are both this: a process in a session
of its own that outlives the command (or cron job) that started it, a pid file that names it, a log file its
output goes to, and a readiness check that says when it answers.
"""
import os
import signal
import subprocess
import sys
import time
from typing import Callable


class Service:
    """One service: `marker` is a byte string its /proc cmdline holds (so a reused pid is not mistaken for it)."""

    def __init__(self, name: str, pidfile: str, logfile: str, marker: bytes):
        self.name, self.pidfile, self.logfile, self.marker = name, pidfile, logfile, marker

    def running_pid(self) -> int | None:
        """The pid in the pid file when that process is alive and is this service."""
        try:
            pid = int(open(self.pidfile).read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError):
            return None
        return pid if self.marker in cmdline and not _zombie(pid) else None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "".join(open(self.logfile, errors="replace").readlines()[-lines:])
        except OSError:
            return ""

    def start(self, cmd: list[str], ready: Callable[[], bool], timeout: float, env: dict | None = None,
              cwd: str | None = None) -> tuple[int | None, str]:
        """Start `cmd` detached, its output appended to the log; wait until `ready()`.

        Returns (pid, "already running") when the pid file names a live one, (pid, "") once a new one answers,
        else (None, why): something else answers in its place, or it exited or never answered (with the log's
        tail; a process that never answered is stopped, so a failed start leaves nothing running).
        """
        pid = self.running_pid()
        if pid:
            return pid, "already running"
        if ready():
            return None, (f"something already answers where {self.name} would, but {self.pidfile} does not name "
                          f"it; not starting a second one")
        os.makedirs(os.path.dirname(self.pidfile), exist_ok=True)
        os.makedirs(os.path.dirname(self.logfile), exist_ok=True)
        with open(self.logfile, "ab") as out:
            # A session of its own: the service outlives this command and the terminal (or cron job) it came from.
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, env=env, cwd=cwd)
        with open(self.pidfile, "w") as f:
            f.write(f"{proc.pid}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                os.remove(self.pidfile)
                return None, f"{self.name} exited with status {proc.returncode} at start; {self.logfile}:\n{self.log_tail()}"
            if ready():
                return proc.pid, ""
            time.sleep(0.3)
        self.stop(timeout=10)
        return None, f"{self.name} (pid {proc.pid}) did not answer within {timeout:.0f}s; {self.logfile}:\n{self.log_tail()}"

    def stop(self, timeout: float, group: bool = False) -> tuple[int | None, str]:
        """SIGTERM the service (with `group`, its whole process group: children it forked too) and wait.

        Returns (pid or None when it was not running, "" or why it did not stop).
        """
        pid = self.running_pid()
        if not pid:
            if os.path.exists(self.pidfile):
                os.remove(self.pidfile)
            return None, ""
        _signal(pid, signal.SIGTERM, group)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
            if _reap(pid) or _zombie(pid):  # exited (a zombie until its parent, maybe init, collects it)
                break
            time.sleep(0.2)
        if os.path.exists(f"/proc/{pid}") and not _zombie(pid):
            return pid, f"{self.name} (pid {pid}) still running {timeout:.0f}s after SIGTERM"
        if group:
            _signal(pid, signal.SIGKILL, group)  # what it forked and left behind
        os.remove(self.pidfile)
        return pid, ""


def children_map() -> dict[int, list[int]]:
    """Every process's children, by parent pid, read from /proc."""
    children: dict[int, list[int]] = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{name}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        children.setdefault(int(stat[stat.rindex(")") + 2:].split()[1]), []).append(int(name))
    return children


def descendants(pid: int, children: dict[int, list[int]] | None = None) -> list[int]:
    """The pids of `pid`'s children, their children, and so on."""
    children = children_map() if children is None else children
    found, todo = [], list(children.get(pid, []))
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def rss(pid: int) -> int:
    """Resident set size of `pid` in bytes (0 once it has exited)."""
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _signal(pid: int, sig: int, group: bool) -> None:
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> bool:
    """Collect the exit of a service we started ourselves in this process (tests); False otherwise."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return False


def _zombie(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text)


def fail(tool: str, text: str) -> int:
    print(f"{tool}: {text}", file=sys.stderr)
    return 1

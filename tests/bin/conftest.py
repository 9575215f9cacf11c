"""Fixtures of the operator tools: a config file for subprocesses, a real luigid, cron's bare environment."""
import configparser
import json
import socket
import sqlite3
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO, TEST_CONFIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OpsConfig:
    """A LUIGI_CONFIG_PATH file for the bin/ tools: the test config, the root, and var/ + logs/ under tmp."""

    def __init__(self, tmp: Path, root: Path):
        self.path = tmp / "ops.cfg"
        self.var = tmp / "var"
        self.logs = tmp / "logs"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.history = self.var / "task-history.db"
        self.values = {section: dict(values) for section, values in TEST_CONFIG.items()}
        self.set("paths", "root", root)
        self.set("publish", "url", f"sqlite:///{root}/nightshift.db")
        self.set("core", "default_scheduler_port", self.port)
        self.set("scheduler", "state_path", self.var / "luigid-state.pickle")
        self.set("task_history", "db_connection", f"sqlite:///{self.history}")
        self.set("cron", "log_dir", self.logs)
        self.set("cron", "lock_file", self.var / "run-daily.lock")
        # Test roots hold one scored night: catching up the days before it would score them too.
        self.set("cron", "catchup_days", 1)

    def set(self, section: str, key: str, value) -> None:
        self.values.setdefault(section, {})[key] = str(value)
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_dict(self.values)
        with open(self.path, "w") as f:
            parser.write(f)

    def env(self) -> list[str]:
        """cron's bare environment: nothing but a minimal PATH (and the config overlay)."""
        return ["env", "-i", "PATH=/usr/bin:/bin", f"LUIGI_CONFIG_PATH={self.path}"]

    def run(self, tool: str, *args, timeout: float = 600) -> subprocess.CompletedProcess:
        """A bin/ tool under cron's environment, started from / to show it finds the repo by itself."""
        cmd = [*self.env(), str(REPO / "bin" / tool), *map(str, args)]
        return subprocess.run(cmd, cwd="/", capture_output=True, text=True, timeout=timeout)

    def tasks(self, status: str) -> dict:
        """The scheduler's tasks in one status, by task id (its HTTP API, as the web view reads it)."""
        query = urllib.parse.quote(json.dumps({"status": status, "upstream_status": "", "search": ""}))
        with urllib.request.urlopen(f"{self.url}/api/task_list?data={query}", timeout=10) as reply:
            return json.load(reply)["response"]

    def history_rows(self) -> list[tuple]:
        with sqlite3.connect(self.history) as conn:
            return conn.execute(
                "SELECT t.name, e.event_name FROM tasks t JOIN task_events e ON e.task_id = t.id").fetchall()


@pytest.fixture
def ops(tmp_path, root):
    return OpsConfig(tmp_path, root)


@pytest.fixture
def luigid(ops):
    """A real luigid on a free port of 127.0.0.1, started and stopped with bin/scheduler."""
    started = ops.run("scheduler", "start", timeout=60)
    assert started.returncode == 0, started.stderr + started.stdout
    try:
        yield ops
    finally:
        stopped = ops.run("scheduler", "stop", timeout=60)
        assert stopped.returncode == 0, stopped.stderr + stopped.stdout


def families_of(task_list: dict) -> set[str]:
    return {task["name"] for task in task_list.values()}

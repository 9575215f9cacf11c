"""DailyScoring on a real Spark standalone cluster (a master and one worker on 127.0.0.1), equal to local mode."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import REPO, SCORE_DATE, TEST_CONFIG

STARTUP_SECONDS = 300
RUN_SECONDS = 1500


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spark_class() -> str:
    """The launcher shipped inside the pip-installed pyspark (the venv's)."""
    import pyspark

    return os.path.join(os.path.dirname(pyspark.__file__), "bin", "spark-class")


def _status(webui: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{webui}/json/", timeout=10) as response:
        return json.load(response)


def _unavailable(message: str):
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    # The worker's executors are its children, in the process group we started it in.
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class Cluster:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port, self.webui, self.worker_webui = _free_port(), _free_port(), _free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_WORKER_DIR": str(workdir / "work")}
        self.processes: list[subprocess.Popen] = []

    def _start(self, name: str, *args: str) -> None:
        log = open(self.workdir / f"{name}.log", "wb")
        self.processes.append(subprocess.Popen([_spark_class(), *args], env=self.env, stdout=log,
                                               stderr=subprocess.STDOUT, start_new_session=True))

    def start(self) -> None:
        self._start("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                    "--port", str(self.port), "--webui-port", str(self.webui))
        self._start("worker", "org.apache.spark.deploy.worker.Worker", self.url, "--host", "127.0.0.1",
                    "--cores", "1", "--memory", "1g", "--webui-port", str(self.worker_webui))
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.processes):
                break
            try:
                if any(w.get("state") == "ALIVE" for w in _status(self.webui).get("workers", [])):
                    return
            except OSError:
                pass
            time.sleep(2)
        _unavailable(f"the Spark standalone cluster did not come up:\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
                         for log in sorted(self.workdir.glob("*.log")))

    def stop(self) -> None:
        for process in reversed(self.processes):
            _stop(process)


@pytest.fixture
def spark_cluster(tmp_path):
    """A standalone master and one 1-core, 1g worker on 127.0.0.1, stopped afterwards whatever happens."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        _unavailable("no java on PATH and no JAVA_HOME: Spark cannot run")
    workdir = tmp_path / "cluster"
    workdir.mkdir()
    cluster = Cluster(workdir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def _scores(db: Path) -> dict[int, float]:
    with sa.create_engine(f"sqlite:///{db}").connect() as conn:
        rows = conn.execute(sa.text("SELECT client_id, score FROM predictions WHERE score_date = :d"),
                            {"d": SCORE_DATE.isoformat()}).fetchall()
    return {int(client): float(score) for client, score in rows}


def _write_config(path: Path, sections: dict) -> None:
    text = ""
    for section, values in sections.items():
        text += f"[{section}]\n" + "".join(f"{key} = {value}\n" for key, value in values.items()) + "\n"
    path.write_text(text)


def test_daily_scoring_on_a_standalone_cluster_publishes_what_local_mode_publishes(
        spark_cluster, sample_data, scored_template, tmp_path):
    root = tmp_path / "root"
    for name in ("raw", "truth"):
        shutil.copytree(sample_data / name, root / name)
    config = {section: dict(values) for section, values in TEST_CONFIG.items()}
    config["spark"].update(
        master=spark_cluster.url,
        driver_memory="1g",
        conf="spark.executor.memory=1g|spark.cores.max=1|spark.sql.shuffle.partitions=2"
             "|spark.ui.enabled=false|spark.ui.showConsoleProgress=false",
    )
    config["paths"] = {"root": str(root)}
    config["publish"] = {"url": f"sqlite:///{root}/nightshift.db"}
    overlay = tmp_path / "cluster.cfg"
    _write_config(overlay, config)
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(overlay), "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop("NIGHTSHIFT_PUBLISH_URL", None)
    luigi = os.path.join(os.path.dirname(sys.executable), "luigi")
    run = subprocess.run([luigi, "--module", "tasks", "DailyScoring", "--date", SCORE_DATE.isoformat(),
                          "--local-scheduler"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=RUN_SECONDS)
    assert run.returncode == 0, f"{run.stdout[-4000:]}\n{run.stderr[-4000:]}\n{spark_cluster.logs()}"

    # The application ran on the cluster (its executor on our worker) and ended cleanly.
    apps = _status(spark_cluster.webui)["completedapps"]
    assert [app["name"] for app in apps] == ["nightshift"], apps
    assert apps[0]["state"] == "FINISHED", apps
    assert (spark_cluster.workdir / "work" / apps[0]["id"]).is_dir()

    # Spark's console stays quiet: no log lines, no 'Setting default log level'.
    assert "Setting default log level" not in run.stderr
    assert " INFO " not in run.stderr and " WARN " not in run.stderr, run.stderr[-4000:]

    # Executors ran the cleaning and scoring UDFs, which import `tasks`: it is installed only in the
    # venv (the executors' working folder is the worker's, not the repo), so its Python ran them.
    cluster_scores = _scores(root / "nightshift.db")
    local_scores = _scores(scored_template / "nightshift.db")
    assert len(cluster_scores) > 0
    assert cluster_scores.keys() == local_scores.keys()
    worst = max(abs(cluster_scores[c] - local_scores[c]) for c in local_scores)
    assert worst < 1e-6, f"largest score difference cluster vs local: {worst}"

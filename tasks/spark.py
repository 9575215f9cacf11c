"""The Spark session: made lazily from [spark] config, shared by every Spark task of the process."""
import atexit
import contextlib
import functools
import inspect
import multiprocessing.util
import os
import sys
import threading
import time

import luigi

from nightshift.schema import SCORE_BATCH_ROWS
from targets import fs
from tasks import config
from tasks.errors import ConfigurationError, ExplainsFailures, ServiceUnavailable

_session = None
_owner_pid = None
# Seconds the last session took to start (JVM launch + SparkContext; with Spark Connect, opening the session), for
# logs and the benchmark; None before.
startup_seconds = None
# Sessions inherited from a parent process through fork: kept referenced, never used, never closed.
# Closing them (or letting py4j's finalisers run) would talk to, or shut down, the parent's JVM.
_inherited = []

_LOG4J = os.path.join(os.path.dirname(__file__), "log4j2.properties")


def settings(cfg: config.spark) -> dict[str, str]:
    """Every Spark setting the session is built with: ours first, then `[spark] conf` (which wins)."""
    base = {
        "spark.master": cfg.master,
        "spark.app.name": "nightshift",
        "spark.submit.deployMode": "client",
        # Executors' Python workers must run this interpreter (the venv's), not whatever python3 is on PATH.
        "spark.pyspark.python": sys.executable,
        "spark.driver.memory": cfg.driver_memory,
        # C1 only: a night's JVM lives minutes, and C2 recompiling Spark's hot paths costs more CPU than it saves
        # there (a 100k-client steady night: the JVM's CPU time halves). In local mode the driver is the executor.
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{_LOG4J} -XX:TieredStopAtLevel=1",
        # Timestamps shown and cast as wall-clock time read in the zone the raw partitions are cut in.
        "spark.sql.session.timeZone": config.raw().timezone,
        # FeatureTable's join by Spark (off the local filesystem) of two 1M-row tables: hashing the smaller side
        # skips sorting both (its Spark operation 4.5 -> 2.8 s). Spark still picks a sort-merge join when a side is
        # too big to hash per partition.
        "spark.sql.join.preferSortMergeJoin": "false",
        # Predict: rows per Arrow batch, each one scikit-learn call.
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(SCORE_BATCH_ROWS),
        # ClientFeatures caches the cleaned snapshot for three passes; encoding it costs more than it saves
        # (1M rows: 3.3 -> 2.6 s to build).
        "spark.sql.inMemoryColumnarStorage.compressed": "false",
        # TransactionFeatures by Spark (off the local filesystem) groups 30 days of per-day rows by client: a million
        # keys overflow the small first-level hash map at once, and probing it first costs more than it saves (its
        # 1M-client aggregation 4.7 -> 4.2 s).
        "spark.sql.codegen.aggregate.map.twolevel.enabled": "false",
    }
    return {**base, **fs.parse_options(cfg.conf, "[spark] conf")}


def is_connect(master: str) -> bool:
    """True for a Spark Connect endpoint (`sc://host:port`): the session is a client of a long-lived server."""
    return master.startswith("sc://")


# Spark Connect's own default port.
CONNECT_PORT = 15002


def connect_address(url: str) -> tuple[str, int]:
    """Host and port of an sc://host:port[/;param=...] URL."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url.split("/;")[0])
    return parts.hostname or "localhost", parts.port or CONNECT_PORT


# Spark Connect server settings under which one session can serve run after run (bin/spark-server sets them): the
# server keeps no resolved plans per session (a kept plan would read a rebuilt folder's old file list) and no list of
# closed session ids (a kept session that timed out is opened anew under its id).
KEEPS_SESSIONS = {
    "spark.connect.session.planCache.enabled": "false",
    "spark.connect.session.manager.closedSessionsTombstonesSize": "0",
}


def kept_session_id(conf: dict[str, str], code: str | None = None, packages: str | None = None) -> str:
    """The Spark Connect session id shared by every run with these settings, this code and these packages.

    A session holds what Spark compiles for it and its Python daemon, which imports the scoring libraries once
    (nightshift.daemon); runs on one session reuse both. Any change that could make a kept session stale gives
    another id: a Spark setting, a file of the nightshift package (`code`: size or modification time), or an install
    or upgrade in the interpreter's site-packages (`packages`: the folder's modification time).
    """
    import json
    import sysconfig
    import uuid

    import nightshift

    code = code or os.path.dirname(nightshift.__file__)
    packages = packages or sysconfig.get_paths()["purelib"]
    files = sorted(name for name in os.listdir(code) if name.endswith(".py"))
    stamps = [(name, st.st_size, st.st_mtime_ns) for name in files for st in [os.stat(os.path.join(code, name))]]
    key = json.dumps([sorted(conf.items()), stamps, os.stat(packages).st_mtime_ns])
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "nightshift:" + key))


def session_settings(conf: dict[str, str]) -> dict[str, str]:
    """The settings a Spark Connect client sets on its own session: the SQL ones. The rest are the server's."""
    return {key: value for key, value in conf.items() if key.startswith("spark.sql.")}


def _is_connect_session(spark) -> bool:
    return type(spark).__module__.startswith("pyspark.sql.connect")


class _ConnectProgress:
    """What a Spark Connect server last reported of this client's operations (its progress handler)."""

    def __init__(self):
        self.operations: set[str] = set()
        self.stages: list = []

    def __call__(self, stages, inflight_tasks, operation_id, done):
        if operation_id:
            self.operations.add(operation_id)
        self.stages = [] if done else [stage for stage in stages or () if not stage.done]


_connect_progress = _ConnectProgress()


def _forget_inherited_session() -> None:
    """In a forked child: drop pyspark's process-wide handles on the parent's JVM so a new one is launched."""
    global _session
    if "pyspark.sql" not in sys.modules:
        return
    if _session is not None and _is_connect_session(_session):
        # A Spark Connect client: its gRPC channel belongs to the parent; the child opens its own connection.
        _inherited.append(_session)
        _session = None
        return
    from pyspark import SparkContext
    from pyspark.sql import SQLContext, SparkSession

    if SparkContext._gateway is None and _session is None:
        return
    _inherited.append((_session, SparkContext._gateway, SparkContext._active_spark_context,
                       SparkSession._instantiatedSession))
    _session = None
    SparkContext._gateway = None
    SparkContext._jvm = None
    SparkContext._active_spark_context = None
    SparkSession._instantiatedSession = None
    SparkSession._activeSession = None
    SQLContext._instantiatedContext = None


def session():
    """The process's SparkSession, created on first use (and anew in a forked Luigi worker process).

    The driver runs in this process (client mode). A JVM is never shared across a fork: a task
    process forked by Luigi (`--workers N`) sees a different pid, forgets the parent's gateway and
    launches its own JVM (its own Spark application), stopped when that task process exits. With
    `[spark] master = sc://...` the session is a Spark Connect client of a long-lived server instead
    (no JVM here), in the session runs like this one keep there (`_connect`); a forked task process opens its own
    connection to it.
    """
    global _session, _owner_pid, startup_seconds
    pid = os.getpid()
    if _session is not None and _owner_pid == pid:
        return _session
    conf = settings(config.spark())
    started = time.perf_counter()
    if is_connect(conf["spark.master"]):
        _session = _connect(conf)
    else:
        _session = _launch(conf)
    startup_seconds = time.perf_counter() - started
    first = _owner_pid is None
    _owner_pid = pid
    if first:
        atexit.register(stop)
    # A Luigi task process (multiprocessing, fork) exits without atexit handlers but runs these.
    multiprocessing.util.Finalize(None, stop, exitpriority=10)
    return _session


def _connect(conf: dict[str, str]):
    """A session on the Spark Connect server at `[spark] master`: the one kept for runs like this one where the
    server allows it, else a new one; never a client inherited through a fork.

    A server that does not accept connections fails the task at once, in one line: pyspark's client would retry
    for minutes before saying anything.
    """
    import socket

    url = conf["spark.master"]
    host, port = connect_address(url)
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        local = host in ("127.0.0.1", "localhost")
        raise ServiceUnavailable(
            f"[spark] master = {url}: no Spark Connect server answers ({exc.strerror or exc})"
            + ("; start it with bin/spark-server start" if local else "")
        ) from None
    spark = _kept_session(url, conf) if ";session_id=" not in url else None
    if spark is None:
        spark = _open(url)
    spark.registerProgressHandler(_connect_progress)
    for key, value in session_settings(conf).items():
        _set_session_setting(spark, key, value, url)
    return spark


def _set_session_setting(spark, key: str, value: str, url: str) -> None:
    """Set one SQL setting on a Spark Connect session. A static one (e.g. spark.sql.codegen.cache.maxEntries) only
    the server's start can apply: accepted when the server runs with that value, else a ConfigurationError."""
    from pyspark.errors import AnalysisException

    try:
        spark.conf.set(key, value)
    except AnalysisException as exc:
        if exc.getCondition() != "CANNOT_MODIFY_STATIC_CONFIG":
            raise
        running = spark.conf.get(key)
        if running != value:
            raise ConfigurationError(
                f"[spark] conf: {key}={value} is a static Spark setting, applied when the server starts, and the "
                f"server at {url} runs with {running}: restart it "
                f"(bin/spark-server restart) to apply it"
            ) from None


def _open(url: str):
    """A client of the Spark Connect server at `url`: a new session, or the one its ;session_id= names."""
    from pyspark.sql import SparkSession
    from pyspark.sql.connect.client.retries import DefaultPolicy

    spark = SparkSession.builder.remote(url).create()
    # pyspark retries a lost server for 10 minutes; a restart or a blip of the server is over in seconds. After
    # about 25 s the task fails (tasks.errors turns the gRPC error into ServiceUnavailable) and the rerun redoes it.
    spark.client.set_retry_policies([DefaultPolicy(max_retries=8, max_backoff=5000)])
    return spark


def _kept_session(url: str, conf: dict[str, str]):
    """The session runs like this one share on the server (kept_session_id), or None when the server cannot keep it.

    A server not started with KEEPS_SESSIONS (someone else's) gets a new session per run, as before: with its plan
    cache on, a kept session could read a rebuilt folder's old file list.
    """
    from pyspark.errors import PySparkException

    sid = kept_session_id(conf)
    spark = _open(url + ("" if "/;" in url else "/") + f";session_id={sid}")
    # Leaving keeps it: the next run goes on where this one stops.
    spark.release_session_on_close = False
    try:
        kept = dict(zip(KEEPS_SESSIONS, spark.client.get_configs(*KEEPS_SESSIONS))) == KEEPS_SESSIONS
    except PySparkException as exc:
        # It timed out on a server that remembers closed sessions: INVALID_HANDLE.SESSION_CLOSED.
        if "INVALID_HANDLE" not in str(exc):
            raise
        kept = False
    if not kept:
        spark.stop()
        return None
    return spark


def _launch(conf: dict[str, str]):
    """A new Spark application with its driver JVM in this process's gateway."""
    from pyspark.sql import SparkSession

    # pyspark hands executors the driver's PYSPARK_PYTHON, so the setting only works through it.
    os.environ["PYSPARK_PYTHON"] = conf["spark.pyspark.python"]
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(config.spark().log_level)
    return spark


os.register_at_fork(after_in_child=_forget_inherited_session)


def stop() -> None:
    """Stop this process's session (the Spark application ends); a no-op in a process that does not own it."""
    global _session
    if _session is not None and _owner_pid == os.getpid():
        _session.stop()
        _session = None


class SparkProgress:
    """While a task runs, a daemon thread reports its Spark jobs to the scheduler every `interval` seconds.

    It reads `sparkContext.statusTracker()` of the session this process already has (it never starts
    one) and sends the active stages' completed/total tasks as the task's status message and progress
    percentage: what luigid's web view shows next to a running task.
    """

    def __init__(self, task, interval: float = 2.0):
        self.task = task
        self.interval = interval
        self._baseline: set[int] = set()
        self._last = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"spark-progress-{task.task_id}", daemon=True)

    def __enter__(self):
        self.task._spark_progress = self
        self._started = time.monotonic()
        self._baseline = self._job_ids()
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self._stop.set()
        self._thread.join(timeout=10)
        self.task._spark_progress = None
        elapsed = time.monotonic() - self._started
        try:
            jobs = len(self._job_ids() - self._baseline)
        except Exception:
            jobs = "?"
        outcome = "failed" if exc_type else "done"
        self._send(f"{outcome} after {elapsed:.0f}s: {jobs} Spark job(s)", None if exc_type else 100)
        return False

    def _job_ids(self) -> set:
        """Ids of every Spark job (Connect: operation) this process's session has run so far (none without one)."""
        if _session is None or _owner_pid != os.getpid():
            return set()
        if _is_connect_session(_session):
            return set(_connect_progress.operations)
        return set(_session.sparkContext.statusTracker().getJobIdsForGroup())

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                report = self.snapshot()
            except Exception:  # a status report must never break the task
                continue
            if report is not None:
                self._send(*report)

    def snapshot(self) -> tuple[str, int] | None:
        """(message, percentage) of the Spark work running now, or None when there is none."""
        if _session is None or _owner_pid != os.getpid():
            return None
        if _is_connect_session(_session):
            stages = list(_connect_progress.stages)
            if not stages:
                return None
            done = sum(stage.num_completed_tasks for stage in stages)
            total = sum(stage.num_tasks for stage in stages)
            so_far = len(self._job_ids() - self._baseline)
            message = f"Spark operation {so_far}: {len(stages)} stage(s), {done}/{total} tasks done"
            return message, int(100 * done / total) if total else 0
        tracker = _session.sparkContext.statusTracker()
        jobs = tracker.getActiveJobsIds()
        stages = [info for info in map(tracker.getStageInfo, tracker.getActiveStageIds()) if info is not None]
        if not stages:
            return None
        done = sum(info.numCompletedTasks for info in stages)
        total = sum(info.numTasks for info in stages)
        names = ", ".join(sorted({info.name.split(" at ")[0] for info in stages}))
        so_far = len(self._job_ids() - self._baseline)
        message = (f"Spark job {max(jobs) if jobs else '?'} ({so_far} so far): "
                   f"{len(stages)} stage(s) [{names}], {done}/{total} tasks done")
        return message, int(100 * done / total) if total else 0

    def _send(self, message: str, percentage: int | None) -> None:
        if (message, percentage) == self._last:
            return
        self._last = (message, percentage)
        try:
            if callable(getattr(self.task, "set_status_message", None)):
                self.task.set_status_message(message)
            if percentage is not None and callable(getattr(self.task, "set_progress_percentage", None)):
                self.task.set_progress_percentage(percentage)
        except Exception:  # the scheduler being away must not fail the task
            pass


def _reporting(task) -> bool:
    """True inside a run() already reporting: a subclass's run() calling super().run() reports once, not twice."""
    return getattr(task, "_spark_progress", None) is not None


def _with_progress(run):
    if inspect.isgeneratorfunction(run):
        @functools.wraps(run)
        def wrapper(self):
            if _reporting(self):
                return (yield from run(self))
            with SparkProgress(self):
                return (yield from run(self))
    else:
        @functools.wraps(run)
        def wrapper(self):
            if _reporting(self):
                return run(self)
            with SparkProgress(self):
                return run(self)
    wrapper.reports_progress = True
    return wrapper


class SparkTask(ExplainsFailures, luigi.Task):
    """Base of the tasks whose run() uses Spark: the scheduler shows their Spark progress while they run."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        run = cls.__dict__.get("run")
        if run is not None and not getattr(run, "reports_progress", False):
            cls.run = _with_progress(run)


@contextlib.contextmanager
def cached(frame, *sources: str):
    """`frame` cached for the with-block and unpersisted after it, also when the block fails.

    Spark's cache belongs to the application, so a Spark Connect server shares it among all its runs, and it is
    found by the plan that is read, paths included: a cached read that a failed or killed run left behind would
    answer a later run's read of the same path with the file as it was before it was replaced. So whatever is
    cached of `sources` (Spark paths) is read anew first (`refreshByPath`), and the frame never outlives the block.
    """
    catalog = frame.sparkSession.catalog
    for source in sources:
        catalog.refreshByPath(source)
    frame = frame.cache()
    try:
        yield frame
    finally:
        frame.unpersist()


def ship(spark, payload: bytes):
    """`payload` for executors as something with a `.value`: a broadcast, or (Spark Connect, which has no
    broadcast) the bytes themselves, carried inside the pickled function."""
    if _is_connect_session(spark):
        from nightshift.executors import Payload

        return Payload(payload)
    return spark.sparkContext.broadcast(payload)

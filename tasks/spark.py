"""The Spark session: made lazily from [spark] config, shared by every Spark task of the process."""
import atexit
import multiprocessing.util
import os
import sys

from tasks import config

_session = None
_owner_pid = None
# Sessions inherited from a parent process through fork: kept referenced, never used, never closed.
# Closing them (or letting py4j's finalisers run) would talk to, or shut down, the parent's JVM.
_inherited = []

_LOG4J = os.path.join(os.path.dirname(__file__), "log4j2.properties")


def parse_conf(text: str) -> dict[str, str]:
    """`[spark] conf`: `key=value` items, one per line or separated by `|`; blank items and `#` comments skipped.

    A later item overrides an earlier one with the same key. Values may contain `=` (only the first
    one splits); they may not contain `|`.
    """
    items = [part.strip() for line in text.splitlines() for part in line.split("|")]
    conf = {}
    for item in items:
        if not item or item.startswith("#"):
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"[spark] conf: expected key=value, got {item!r}")
        conf[key.strip()] = value.strip()
    return conf


def settings(cfg: config.spark) -> dict[str, str]:
    """Every Spark setting the session is built with: ours first, then `[spark] conf` (which wins)."""
    base = {
        "spark.master": cfg.master,
        "spark.app.name": "nightshift",
        "spark.submit.deployMode": "client",
        # Executors' Python workers must run this interpreter (the venv's), not whatever python3 is on PATH.
        "spark.pyspark.python": sys.executable,
        "spark.driver.memory": cfg.driver_memory,
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{_LOG4J}",
        "spark.sql.session.timeZone": "UTC",
    }
    return {**base, **parse_conf(cfg.conf)}


def _forget_inherited_session() -> None:
    """In a forked child: drop pyspark's process-wide handles on the parent's JVM so a new one is launched."""
    global _session
    if "pyspark.sql" not in sys.modules:
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
    launches its own JVM (its own Spark application), stopped when that task process exits.
    """
    global _session, _owner_pid
    pid = os.getpid()
    if _session is not None and _owner_pid == pid:
        return _session
    from pyspark.sql import SparkSession

    conf = settings(config.spark())
    # pyspark hands executors the driver's PYSPARK_PYTHON, so the setting only works through it.
    os.environ["PYSPARK_PYTHON"] = conf["spark.pyspark.python"]
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    _session = builder.getOrCreate()
    _session.sparkContext.setLogLevel(config.spark().log_level)
    first = _owner_pid is None
    _owner_pid = pid
    if first:
        atexit.register(stop)
    # A Luigi task process (multiprocessing, fork) exits without atexit handlers but runs these.
    multiprocessing.util.Finalize(None, stop, exitpriority=10)
    return _session


os.register_at_fork(after_in_child=_forget_inherited_session)


def stop() -> None:
    """Stop this process's session (the Spark application ends); a no-op in a process that does not own it."""
    global _session
    if _session is not None and _owner_pid == os.getpid():
        _session.stop()
        _session = None

"""The Spark session: made lazily from [spark] config, shared by every Spark task of the process."""
import atexit
import os
import sys

from tasks import config

_session = None
_owner_pid = None

_LOG4J = os.path.join(os.path.dirname(__file__), "log4j2.properties")


def parse_conf(text: str) -> dict[str, str]:
    """`[spark] conf`: `key=value` items, one per line or separated by `|`."""
    items = [part.strip() for line in text.splitlines() for part in line.split("|")]
    conf = {}
    for item in items:
        if not item or item.startswith("#"):
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"[spark] conf: expected key=value, got {item!r}")
        conf[key.strip()] = value.strip()
    return conf


def session():
    """The process's SparkSession, created on first use (and anew in a forked Luigi worker process).

    A JVM is never shared across a fork: a Luigi worker process forked for a task (`--workers N`)
    sees a different pid and builds its own session.
    """
    global _session, _owner_pid
    if _session is not None and _owner_pid == os.getpid():
        return _session
    # Spark's Python workers must run this interpreter (the venv's), not whatever python3 is on PATH.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    cfg = config.spark()
    builder = (
        SparkSession.builder.master(cfg.master)
        .appName("nightshift")
        .config("spark.pyspark.python", sys.executable)
        .config("spark.driver.memory", cfg.driver_memory)
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{_LOG4J}")
        .config("spark.sql.session.timeZone", "UTC")
    )
    for key, value in parse_conf(cfg.conf).items():
        builder = builder.config(key, value)
    _session = builder.getOrCreate()
    _session.sparkContext.setLogLevel(cfg.log_level)
    _owner_pid = os.getpid()
    atexit.register(stop)
    return _session


def stop() -> None:
    global _session
    if _session is not None and _owner_pid == os.getpid():
        _session.stop()
    _session = None

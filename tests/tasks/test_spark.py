"""The Spark session: `[spark]` settings pass through, and a forked Luigi task process never uses its parent's JVM."""
import datetime as dt
import multiprocessing
import os
import re
import sys

import pandas as pd
import pytest
import sqlalchemy as sa

from nightshift.errors import ConfigurationError
from targets import fs
from tasks import DailyScoring, Predict, Publish, TransactionDaily, ValidatePredictions, config, spark
from tests.conftest import SCORE_DATE, build, families


def test_conf_takes_one_setting_per_line_or_pipe_separated_skipping_blanks_and_comments():
    text = """
        spark.sql.shuffle.partitions=8
        # executors
        spark.executor.memory = 4g | spark.executor.cores=2

        spark.driver.extraJavaOptions=-Dx=1 -Dy=2
    """
    assert fs.parse_options(text, "[spark] conf") == {
        "spark.sql.shuffle.partitions": "8",
        "spark.executor.memory": "4g",
        "spark.executor.cores": "2",
        "spark.driver.extraJavaOptions": "-Dx=1 -Dy=2",
    }
    assert fs.parse_options("", "[spark] conf") == {}
    assert fs.parse_options("a=1|a=2", "[spark] conf") == {"a": "2"}
    assert fs.parse_options("spark.yarn.tags=", "[spark] conf") == {"spark.yarn.tags": ""}


@pytest.mark.parametrize("text, bad", [
    ("spark.executor.memory", "spark.executor.memory"),
    ("spark.a=1|spark.b 2", "spark.b 2"),
    ("=4g", "=4g"),
])
def test_conf_item_without_key_and_value_is_an_error_naming_it(text, bad):
    with pytest.raises(ConfigurationError, match=r"\[spark\] conf = .*: expected key=value items, got " + re.escape(repr(bad))):
        fs.parse_options(text, "[spark] conf")


@pytest.mark.parametrize("master", ["spark://10.0.0.5:7077", "yarn", "k8s://https://kube.example:6443", "local[4]"])
def test_any_master_url_and_conf_pass_through_and_conf_wins(overlay, master):
    overlay.set("spark", "master", master)
    overlay.set("spark", "driver_memory", "1g")
    overlay.set("spark", "conf", "spark.executor.memory=3g\nspark.pyspark.python=./env/bin/python")
    settings = spark.settings(config.spark())
    assert settings["spark.master"] == master
    assert settings["spark.submit.deployMode"] == "client"
    assert settings["spark.driver.memory"] == "1g"
    assert settings["spark.executor.memory"] == "3g"
    assert settings["spark.pyspark.python"] == "./env/bin/python"
    assert "log4j2.properties" in settings["spark.driver.extraJavaOptions"]


def test_executors_run_this_interpreter_by_default(overlay):
    overlay.set("spark", "conf", "")
    assert spark.settings(config.spark())["spark.pyspark.python"] == sys.executable


def _report_inherited_state(queue):
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    queue.put((SparkContext._gateway, SparkContext._active_spark_context, SparkSession._instantiatedSession,
               spark._session))


def test_a_kept_session_is_left_for_another_whenever_the_settings_the_code_or_the_packages_change(tmp_path):
    code, packages = tmp_path / "nightshift", tmp_path / "site-packages"
    code.mkdir(), packages.mkdir()
    (code / "modeling.py").write_text("A = 1\n")
    conf = {"spark.master": "sc://127.0.0.1:15002", "spark.sql.shuffle.partitions": "8"}

    def kept(settings=conf):
        return spark.kept_session_id(settings, str(code), str(packages))

    first = kept()
    assert kept() == first, "runs with nothing changed share the session"
    assert kept({**conf, "spark.sql.shuffle.partitions": "16"}) != first
    os.utime(code / "modeling.py", ns=(1, 1))  # an edit that keeps the size
    edited = kept()
    assert edited != first
    (packages / "scikit_learn-9.9.dist-info").mkdir()  # an install or upgrade
    os.utime(packages, ns=(2, 2))
    assert kept() != edited


def test_a_read_a_killed_run_left_cached_is_read_anew_and_nothing_stays_cached(tmp_path):
    folder = tmp_path / "table"
    folder.mkdir()
    pd.DataFrame({"n": range(3)}).to_parquet(folder / "part-a.parquet")
    session = spark.session()
    session.read.parquet(str(folder)).cache().count()  # a run killed before it could unpersist
    (folder / "part-a.parquet").unlink()
    pd.DataFrame({"n": range(5)}).to_parquet(folder / "part-b.parquet")

    with spark.cached(session.read.parquet(str(folder)), str(folder)) as frame:
        assert frame.count() == 5
        assert frame.storageLevel.useMemory
    assert not frame.storageLevel.useMemory


def test_forked_process_forgets_the_parents_gateway():
    """What the child would otherwise reuse: pyspark's process-wide gateway, context and session."""
    from pyspark import SparkContext

    sentinel = SparkContext._gateway is None
    if sentinel:
        SparkContext._gateway = "parent's gateway"
    try:
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_report_inherited_state, args=(queue,))
        child.start()
        state = queue.get(timeout=60)
        child.join(60)
    finally:
        if sentinel:
            SparkContext._gateway = None
    assert state == (None, None, None, None)
    assert SparkContext._gateway is not None or sentinel


def _published(url: str) -> dict[int, float]:
    with sa.create_engine(url).connect() as conn:
        rows = conn.execute(sa.text("SELECT client_id, score FROM predictions WHERE score_date = :d"),
                            {"d": SCORE_DATE.isoformat()}).fetchall()
    return {int(client): float(score) for client, score in rows}


def test_two_workers_run_spark_tasks_in_their_own_processes_and_publish_the_same_rows(scored_root):
    parent = spark.session()
    parent_app = parent.sparkContext.applicationId
    url = config.publish().database_url()
    before = _published(url)
    # Two Spark tasks that can run at once (each in its own forked process), then validate and publish.
    other_day = SCORE_DATE - dt.timedelta(days=3)
    assert fs.delete(TransactionDaily(date=other_day).output().uri)
    assert fs.delete(Predict(date=SCORE_DATE).output().uri)
    assert fs.delete(ValidatePredictions(date=SCORE_DATE).output().uri)
    assert Publish(date=SCORE_DATE).output().remove()

    result = build(DailyScoring(date=SCORE_DATE), TransactionDaily(date=other_day), workers=2)
    assert not result["failed"], result["failed"]
    assert families(result["completed"]) == [
        "DailyScoring", "Predict", "Publish", "TransactionDaily", "ValidatePredictions"]
    after = _published(url)
    assert after.keys() == before.keys()
    assert max(abs(after[c] - before[c]) for c in before) < 1e-9
    # The children neither used nor stopped this process's session.
    assert spark.session() is parent
    assert parent.sparkContext.applicationId == parent_app
    assert parent.range(3).count() == 3

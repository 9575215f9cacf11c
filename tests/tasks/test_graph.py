"""The operator tools' view of a night's graph: walk order, states, downstream up to Publish, no Spark."""
import datetime as dt
import os
import subprocess
import sys

from tasks import DailyScoring, Predict, Publish, RawClients, TransactionDaily, ValidatePredictions, graph
from tests.conftest import REPO, SCORE_DATE


def test_walk_of_a_night_without_drops(root):
    states = graph.States()
    visits = list(graph.walk(graph.night(SCORE_DATE), states))
    assert visits[0].task == DailyScoring(date=SCORE_DATE) and visits[0].depth == 0
    assert visits[1].task == Publish(date=SCORE_DATE) and visits[1].parent == visits[0].task
    assert states(visits[0].task) == graph.PENDING
    missing = {v.task.task_id for v in visits if v.state == graph.MISSING}
    assert missing == {v.task.task_id for v in visits if graph.is_raw_drop(v.task)}
    assert RawClients(date=SCORE_DATE - dt.timedelta(days=1)).task_id in missing
    assert [v.repeat for v in visits if v.task == Predict(date=SCORE_DATE)] == [False, True], \
        "Publish and ValidatePredictions both require Predict: met twice, entered once"
    daily = [v.task.task_id for v in visits if isinstance(v.task, TransactionDaily) and not v.repeat]
    assert len(daily) == len(set(daily))


def test_downstream_reaches_publish_and_the_night_s_monitoring_and_comes_first(root):
    night = graph.Graph(graph.night(SCORE_DATE))
    predict = Predict(date=SCORE_DATE).task_id
    ids = night.downstream({predict})
    assert {night.tasks[i].task_family for i in ids} == {
        "Predict", "ValidatePredictions", "Publish", "MonitorModel", "DailyScoring"}
    assert all(night.tasks[i].date == SCORE_DATE for i in ids)
    assert [t.task_family for t in night.downstream_first(ids)] == [
        "DailyScoring", "MonitorModel", "Publish", "ValidatePredictions", "Predict"]


def test_a_wrapper_is_pending_when_its_requirement_is_assumed_absent(scored_root):
    root = graph.night(SCORE_DATE)
    assert graph.States()(root) == graph.DONE
    predict = Predict(date=SCORE_DATE).task_id
    assert graph.will_run(root, {predict}) == ([], []), "Publish is done: Luigi would not look below it"
    runs, missing = graph.will_run(root, graph.Graph(root).downstream({predict}))
    assert sorted(t.task_family for t in runs) == ["DailyScoring", "MonitorModel", "Predict", "Publish",
                                                   "ValidatePredictions"]
    assert missing == []


def test_walking_a_night_starts_no_spark(tmp_path):
    code = ("import datetime as dt\nfrom pyspark import SparkContext\nfrom tasks import graph\n"
            "root = graph.night(dt.date(2026, 3, 2))\nlist(graph.walk(root, graph.States()))\n"
            "graph.will_run(root)\ngraph.Graph(root)\nprint(SparkContext._active_spark_context is None)\n")
    (tmp_path / "data").mkdir()  # the default root, holding the default SQLite file
    env = {k: v for k, v in os.environ.items() if k != "LUIGI_CONFIG_PATH"}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"

"""Publishing: one transaction per day on SQLite and PostgreSQL; a failure at any point leaves the previous state."""
import datetime as dt
import json
import os
import subprocess
import sys
import threading

import pytest
import sqlalchemy as sa

from targets.sql import PublishMarker, describe, engine
from tasks import DailyScoring, Publish, ValidatePredictions, config
from tasks.errors import ConfigurationError, PublishError
from tasks.publish import arrow_records, publish_day
from tasks.predict import Predict
from tests.conftest import REPO, SAMPLE, SCORE_DATE, TEST_CONFIG, add_drifted_day, build, families, make_sample_data
from tests.tasks.test_alerts import body

DAY = dt.date(2026, 3, 2)
NEXT = DAY + dt.timedelta(days=1)


def rows_of(day: dt.date, n: int, version: str = "m1", offset: float = 0.0) -> list[tuple]:
    return [(1000 + i, round((i % 97) / 100 + offset, 6) + 1e-9 * i, version) for i in range(n)]


def snapshot(url: str) -> dict:
    with engine(url).connect() as conn:
        return {
            "predictions": sorted(tuple(map(str, r)) for r in conn.execute(sa.text(
                "SELECT score_date, client_id, score, model_version FROM predictions")).fetchall()),
            "log": sorted(tuple(map(str, r)) for r in conn.execute(sa.text(
                "SELECT score_date, rows, model_version, published_at, verdict FROM publish_log")).fetchall()),
            "latest": conn.execute(sa.text("SELECT DISTINCT score_date FROM predictions_latest")).fetchall(),
        }


@pytest.fixture
def url(production_url):
    return production_url


def test_publish_replaces_the_day_and_a_rerun_keeps_exactly_one_copy(url):
    assert publish_day(url, DAY, rows_of(DAY, 50), "accepted") == 50
    assert publish_day(url, NEXT, rows_of(NEXT, 40), "accepted") == 40
    assert publish_day(url, NEXT, rows_of(NEXT, 30, "m2"), "approved", {"by": "alice", "reason": "campaign"}) == 30
    state = snapshot(url)
    by_day = {}
    for day, *_ in state["predictions"]:
        by_day[day] = by_day.get(day, 0) + 1
    assert by_day == {str(DAY): 50, str(NEXT): 30}
    assert [(r[0], r[1], r[2], r[4]) for r in state["log"]] == [(str(DAY), "50", "m1", "accepted"),
                                                                 (str(NEXT), "30", "m2", "approved")]
    assert [str(r[0]) for r in state["latest"]] == [str(NEXT)]
    with engine(url).connect() as conn:
        who = conn.execute(sa.text("SELECT approved_by, note FROM publish_log WHERE score_date = :d"), {"d": NEXT}).first()
    assert tuple(who) == ("alice", "campaign")


def test_a_day_of_many_rows_is_stored_row_for_row_to_the_last_bit_of_each_score(url):
    # Several load chunks, the last statement shorter than the others; scores that need all 17 digits.
    rows = [(10**12 + i, (i * 0.6180339887498949) % 1, f"m{i % 3}") for i in range(25_001)]
    assert publish_day(url, DAY, rows, "accepted") == 25_001
    with engine(url).connect() as conn:
        stored = conn.execute(sa.text("SELECT score_date, client_id, score, model_version FROM predictions")).fetchall()
        logged = conn.execute(sa.text("SELECT rows, model_version FROM publish_log")).fetchall()
    assert {str(day) for day, *_ in stored} == {str(DAY)}
    assert sorted((int(cid), float(score), version) for _, cid, score, version in stored) == rows
    assert [tuple(r) for r in logged] == [(25_001, "m0,m1,m2")]


def test_a_failure_after_the_delete_leaves_the_previous_state_exactly(url):
    publish_day(url, DAY, rows_of(DAY, 50), "accepted")
    publish_day(url, NEXT, rows_of(NEXT, 40), "accepted")
    before = snapshot(url)

    def failing():
        yield from rows_of(NEXT, 25, "m2")
        raise OSError("disk gone while reading predictions")

    with pytest.raises(OSError, match="disk gone"):
        publish_day(url, NEXT, failing(), "accepted")
    assert snapshot(url) == before


def test_a_connection_killed_mid_copy_leaves_the_previous_state(postgres_url):
    url = postgres_url
    with engine(url).begin() as conn:
        conn.execute(sa.text("DROP VIEW IF EXISTS predictions_latest"))
        conn.execute(sa.text("DROP TABLE IF EXISTS predictions, publish_log"))
    publish_day(url, DAY, rows_of(DAY, 50), "accepted")
    before = snapshot(url)
    killer = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    killed = threading.Event()

    def streaming():
        # The COPY is under way once rows are being pulled: end its server process from another connection.
        for i, row in enumerate(rows_of(DAY, 30_000, "m2")):
            if i == 15_000 and not killed.is_set():
                with killer.connect() as conn:
                    done = conn.execute(sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'COPY%'"
                    )).fetchall()
                assert done == [(True,)], done
                killed.set()
            yield row

    with pytest.raises(sa.exc.DBAPIError):
        publish_day(url, DAY, streaming(), "accepted")
    assert killed.is_set()
    killer.dispose()
    assert snapshot(url) == before


def test_the_pipeline_publishes_the_same_rows_to_postgresql_as_to_sqlite(scored_root, postgres_url, overlay):
    sqlite_url = config.publish().database_url()
    overlay.set("publish", "url", postgres_url)
    with engine(postgres_url).begin() as conn:
        conn.execute(sa.text("DROP VIEW IF EXISTS predictions_latest"))
        conn.execute(sa.text("DROP TABLE IF EXISTS predictions, publish_log"))
    assert not Publish(date=SCORE_DATE).complete()
    result = build(Publish(date=SCORE_DATE))
    assert families(result["completed"]) == ["Publish"]
    assert Publish(date=SCORE_DATE).complete()

    def rows(url):
        with engine(url).connect() as conn:
            return sorted((str(d), int(c), float(s), v) for d, c, s, v in conn.execute(sa.text(
                "SELECT score_date, client_id, score, model_version FROM predictions_latest")).fetchall())

    pg, lite = rows(postgres_url), rows(sqlite_url)
    assert len(pg) == Predict(date=SCORE_DATE).output().read_arrow().num_rows > 0
    assert pg == lite
    assert build(Publish(date=SCORE_DATE))["completed"] == set()


def test_arrow_records_stream_every_row():
    import pyarrow as pa

    table = pa.table({"client_id": pa.array(range(25_000), pa.int64()), "score": [0.5] * 25_000,
                      "model_version": ["m"] * 25_000})
    records = list(arrow_records(table))
    assert len(records) == 25_000 and records[-1] == (24_999, 0.5, "m")


def test_the_environment_url_wins_over_the_config_file(root, overlay, monkeypatch, tmp_path):
    overlay.set("publish", "url", f"sqlite:///{tmp_path}/from-file.db")
    assert config.publish().database_url() == f"sqlite:///{tmp_path}/from-file.db"
    monkeypatch.setenv("NIGHTSHIFT_PUBLISH_URL", "postgresql+psycopg2://u@db.example.com/scoring")
    assert Publish(date=SCORE_DATE).output().url == "postgresql+psycopg2://u@db.example.com/scoring"


def test_a_cluster_root_without_a_publish_url_is_refused_clearly(overlay, monkeypatch):

    monkeypatch.delenv("NIGHTSHIFT_PUBLISH_URL", raising=False)
    overlay.set("paths", "root", "s3a://bank-scoring/nightshift")
    overlay.set("publish", "url", "")
    with pytest.raises(ConfigurationError, match=r"\[publish\] url"):
        config.publish().database_url()


# --- the production database unreachable ------------------------------------------------------

def closed_port() -> int:
    """A port of 127.0.0.1 where nothing listens: connecting is refused at once."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_database_is_not_published_named_without_credentials(caplog):
    port = closed_port()
    url = f"postgresql+psycopg2://scorer:s3cret@127.0.0.1:{port}/scoring"
    assert describe(url) == f"127.0.0.1:{port}/scoring"
    with caplog.at_level("WARNING", logger="luigi-interface"):
        assert not PublishMarker(url, DAY).exists()
        assert not PublishMarker(url, NEXT).exists()
    warnings = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1, "once per database, not once per day checked"
    assert f"production database 127.0.0.1:{port}/scoring unreachable" in warnings[0]
    assert "s3cret" not in warnings[0] and "scorer" not in warnings[0]


def test_sqlite_on_an_unreadable_path_fails_publish_alone_and_the_rerun_publishes(scored_root, overlay, tmp_path):
    folder = tmp_path / "not-mounted-yet"
    overlay.set("publish", "url", f"sqlite:///{folder}/prod.db")
    assert not Publish(date=SCORE_DATE).complete()
    with pytest.raises(PublishError, match=rf"cannot write to the production database sqlite file {folder}/prod.db "
                                           rf"\(.*unable to open database file\): nothing was published for "
                                           rf"{SCORE_DATE}.*bin/run-daily --date {SCORE_DATE}"):
        Publish(date=SCORE_DATE).run()
    failed = build(DailyScoring(date=SCORE_DATE))
    assert families(failed["failed"]) == ["Publish"] and not failed["completed"]
    assert not folder.exists()

    folder.mkdir()
    rerun = build(DailyScoring(date=SCORE_DATE))
    assert families(rerun["completed"]) == ["DailyScoring", "Publish"]
    assert Publish(date=SCORE_DATE).complete()


@pytest.fixture(scope="session")
def next_day_drop(tmp_path_factory):
    """The raw drops of SCORE_DATE (the snapshot NEXT scores), same population as the session's sample."""
    target = tmp_path_factory.mktemp("next-day")
    make_sample_data(target, SCORE_DATE, days=SAMPLE["days"] + 1)
    return target


def test_a_night_with_the_database_down_fails_at_publish_with_one_line_and_the_rerun_runs_only_publish(
        scored_root, next_day_drop, postgres_url, mailbox, tmp_path, overlay):
    add_drifted_day(scored_root, next_day_drop)  # an ordinary next day: nothing drifted in this drop
    overlay.set("model", "retrain", "weekly")  # as the runs below: with other settings their outputs would be stale
    sections = {**TEST_CONFIG, "model": {**TEST_CONFIG["model"], "retrain": "weekly"}, "paths": {"root": scored_root},
                "email": {"receiver": "oncall@example.com", "force_send": "true"},
                "smtp": {"host": "127.0.0.1", "port": mailbox.port}}
    cfg = tmp_path / "overlay.cfg"
    cfg.write_text("".join(f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())
                           for name, values in sections.items()))
    port = closed_port()
    down = f"postgresql+psycopg2://postgres:s3cret@127.0.0.1:{port}/test"

    def night(url):
        return subprocess.run([sys.executable, "-m", "luigi", "--module", "tasks", "DailyScoring", "--date",
                               NEXT.isoformat(), "--local-scheduler"], cwd=REPO, capture_output=True, text=True,
                              env={**os.environ, "LUIGI_CONFIG_PATH": str(cfg), "NIGHTSHIFT_PUBLISH_URL": url},
                              timeout=900)

    first = night(down)
    output = first.stdout + first.stderr
    assert first.returncode == 30, output[-3000:]
    assert "Traceback" not in output and "s3cret" not in output
    errors = [line for line in output.splitlines() if "PublishError" in line]
    assert len(errors) == 1, errors
    assert f"cannot write to the production database 127.0.0.1:{port}/test (" in errors[0]
    assert f"nothing was published for {NEXT}" in errors[0] and f"bin/run-daily --date {NEXT}" in errors[0]
    # Everything upstream ran and is kept; the gate skipped only the comparison with production.
    assert Predict(date=NEXT).complete() and ValidatePredictions(date=NEXT).complete()
    shift = next(c for c in json.loads(ValidatePredictions(date=NEXT).output().read_file("validation.json"))["checks"]
                 if c["name"] == "mean_score_shift")
    assert shift["verdict"] == "skip" and f"127.0.0.1:{port}/test unreachable" in shift["detail"]
    assert len(mailbox.messages) == 1
    mail = mailbox.messages[0]
    text = body(mail)
    assert f"Publish(date={NEXT})" in mail["Subject"] and f"nothing was published for {NEXT}" in text
    assert "s3cret" not in text

    with engine(postgres_url).begin() as conn:
        conn.execute(sa.text("DROP VIEW IF EXISTS predictions_latest"))
        conn.execute(sa.text("DROP TABLE IF EXISTS predictions, publish_log"))
    second = night(postgres_url.replace("postgres@", "postgres:s3cret@"))
    output = second.stdout + second.stderr
    assert second.returncode == 0, output[-3000:]
    ran = output.split("ran successfully:", 1)[1].split("\n\nThis progress", 1)[0]
    # Publish, and what follows it (the night's monitoring, the wrapper): nothing before it is redone.
    assert sorted(line.strip() for line in ran.strip().splitlines()) == \
        [f"- 1 DailyScoring(date={NEXT})", f"- 1 MonitorModel(date={NEXT})", f"- 1 Publish(date={NEXT})"], ran
    with engine(postgres_url).connect() as conn:
        assert conn.execute(sa.text("SELECT score_date FROM publish_log")).scalars().all() == [NEXT]

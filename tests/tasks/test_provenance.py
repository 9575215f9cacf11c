"""Provenance: recipes from normalised source, raw partition fingerprints, manifests written with the data."""
import datetime as dt
import json
import os
import time

import pandas as pd
import pytest
import sqlalchemy as sa

from targets import fs
from targets.directory import MANIFEST, DirectoryTarget, ParquetTarget
from targets.sql import PublishMarker, engine
from tasks import ClientFeatures, TrainModel, TransactionDaily
from tasks import provenance
from tasks.provenance import Recipes, module_source, partition_fingerprint, recipe_of, settings
from tasks.publish import publish_day

FEATURES = module_source("tasks.features")
DAILY = ("tasks.features", "TransactionDaily")


def recipes_with(edits: dict[str, str]) -> Recipes:
    """Recipes reading `edits` (module -> source text) instead of the files, the rest from the real files."""
    return Recipes(source=lambda module: edits.get(module) or module_source(module))


def test_a_comment_docstring_or_layout_edit_changes_no_recipe():
    signature = "def aggregate_days(transactions):"
    edited = FEATURES.replace(f"{signature}\n", f"# Refunds are kept apart: not negative spend.\n{signature}  # per client\n")
    edited = edited.replace('"""Per client aggregates of each day', '"""Per client aggregates of each calendar day')
    edited = edited.replace('    amount = F.col("amount")\n    spend =', '    amount = F.col("amount")  # roubles\n\n    spend =')
    assert all(edit in edited for edit in ("# per client", "each calendar day", "# roubles\n\n"))
    assert recipes_with({"tasks.features": edited}).parts([DAILY]) == Recipes().parts([DAILY])


def test_an_edit_to_the_aggregation_changes_exactly_its_part_and_only_the_recipes_that_call_it():
    edited = FEATURES.replace("spend = F.when(amount > 0, amount)", "spend = F.when(amount >= 0, amount)")
    assert edited != FEATURES
    before, after = Recipes().parts([DAILY]), recipes_with({"tasks.features": edited}).parts([DAILY])
    assert {part for part in before if before[part] != after[part]} == {"tasks.features.aggregate_days"}
    clients = ("tasks.features", "ClientFeatures")
    assert recipes_with({"tasks.features": edited}).parts([clients]) == Recipes().parts([clients]), \
        "ClientFeatures lives in the same module but never calls aggregate_days"


def test_the_recipe_follows_the_core_functions_a_task_calls_and_nothing_unrelated():
    daily = Recipes().parts([DAILY])
    assert {"tasks.features.aggregate_days", "tasks.features.flag_transactions",
            "nightshift.schema.RISKY_CATEGORIES"} <= set(daily)
    assert not any(part.startswith(("nightshift.metrics", "nightshift.modeling", "tasks.spark", "tasks.config"))
                   for part in daily)
    clients = Recipes().parts([("tasks.features", "ClientFeatures")])
    assert {"nightshift.cleaning.parse_values", "nightshift.cleaning.parse_salary"} <= set(clients)
    metrics = module_source("nightshift.metrics")
    edited = metrics.replace("np.clip(scores, 0.0, 1.0)", "np.clip(scores, 0.0, 1.0 - 1e-12)")
    assert edited != metrics
    changed = recipes_with({"nightshift.metrics": edited})
    assert changed.parts([DAILY]) == daily, "an edit to an unrelated module"
    model = ("tasks.train", "TrainModel")
    assert changed.parts([model]) != Recipes().parts([model]), "TrainModel's metrics are part of its recipe"


def test_recipe_version_forces_a_new_recipe_by_hand(monkeypatch):
    recipe_of.cache_clear()
    before = recipe_of(TransactionDaily)
    monkeypatch.setattr(TransactionDaily, "recipe_version", 1)
    recipe_of.cache_clear()
    try:
        after = recipe_of(TransactionDaily)
    finally:
        monkeypatch.undo()
        recipe_of.cache_clear()
    assert after["recipe"] != before["recipe"] and after["recipe_parts"] == before["recipe_parts"]
    assert after["recipe_version"] == 1


def test_recipes_are_read_from_source_without_importing_the_core():
    import subprocess
    import sys

    code = ("import sys, tasks; from tasks.provenance import recipe_of; from tasks import *; "
            "[recipe_of(c) for c in (ClientFeatures, TrainModel, Predict, ValidatePredictions, Publish)]; "
            "print(sorted(m for m in ('sklearn', 'pyspark', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_settings_are_read_by_section_and_key_and_secrets_are_refused(root, overlay):
    overlay.set("raw", "salary_max", "5000000")
    assert settings(["raw.salary_max", "model.seed"]) == {"raw.salary_max": 5_000_000.0, "model.seed": 42}
    with pytest.raises(ValueError, match="publish.url is a secret"):
        settings(["publish.url"])
    for task in (ClientFeatures, TransactionDaily, TrainModel):
        assert not set(task.config_keys) & provenance.SECRET_SETTINGS


def write_partition(folder, rows: int = 3, amount: float = 1.0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"client_id": range(rows), "amount": [amount] * rows}).to_parquet(folder / "part-00000.parquet")
    (folder / "_SUCCESS").write_text("")


def test_a_rewritten_partition_changes_its_fingerprint_a_new_flag_does_not(tmp_path):
    folder = tmp_path / "dt=2026-03-01"
    write_partition(folder)
    first = partition_fingerprint(str(folder))
    assert partition_fingerprint(str(folder)) == first
    os.utime(folder / "_SUCCESS", ns=(time.time_ns() + 10**9,) * 2)
    (folder / ".part-00001.parquet.uploading").write_bytes(b"in flight")
    assert partition_fingerprint(str(folder)) == first, "re-flagging or an upload in progress is not a delivery"
    stat = (folder / "part-00000.parquet").stat()
    write_partition(folder, amount=2.0)
    os.utime(folder / "part-00000.parquet", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert partition_fingerprint(str(folder)) != first
    assert partition_fingerprint(str(tmp_path / "absent")) == "absent"


def test_the_manifest_is_written_with_the_data_or_not_at_all(tmp_path):
    target = ParquetTarget(str(tmp_path / "features" / "date=2026-03-01"))
    with pytest.raises(RuntimeError):
        with target.temporary_path({"task": "T", "fingerprint": "f"}) as tmp:
            fs.write_bytes(fs.join(tmp, "part-0.parquet"), b"half")
            raise RuntimeError("killed")
    assert not target.exists() and target.manifest() is None
    target.write_pandas(pd.DataFrame({"x": [1, 2, 3]}), {"task": "T", "fingerprint": "f", "rows": None})
    assert target.manifest() == {"task": "T", "fingerprint": "f", "rows": 3}, "rows counted from the footers"
    assert target.read_pandas()["x"].tolist() == [1, 2, 3], "the manifest is not read as data"
    report = DirectoryTarget(str(tmp_path / "reports" / "date=2026-03-01"))
    report.write_file("validation.json", b"{}")
    report.mark_complete({"task": "V", "fingerprint": "g", "rows": 5})
    assert report.exists() and report.manifest()["rows"] == 5
    fs.write_bytes(report.file(MANIFEST), b"{not json")
    assert "unreadable" in report.manifest(), "a broken manifest proves nothing: stale, never unknown"


def test_the_publish_log_gains_the_manifest_column_and_old_tables_keep_working(production_url):
    day = dt.date(2026, 3, 2)
    with engine(production_url).begin() as conn:  # publish_log as an older release made it
        conn.execute(sa.text("CREATE TABLE publish_log (score_date DATE PRIMARY KEY, rows INTEGER NOT NULL, "
                             "model_version VARCHAR(64) NOT NULL, published_at TIMESTAMP NOT NULL, "
                             "verdict VARCHAR(16), approved_by VARCHAR(128), note TEXT)"))
        conn.execute(sa.text("INSERT INTO publish_log VALUES (:d, 1, 'm', :t, 'accepted', NULL, NULL)"),
                     {"d": day - dt.timedelta(days=1), "t": dt.datetime(2026, 3, 1, 6)})
    older = PublishMarker(production_url, day - dt.timedelta(days=1))
    assert older.exists() and older.manifest() is None, "a day published before manifests: unknown"
    publish_day(production_url, day, [(1, 0.5, "m"), (2, 0.25, "m")], "accepted",
                manifest={"task": "Publish", "fingerprint": "abc", "rows": None})
    marker = PublishMarker(production_url, day)
    assert marker.manifest() == {"task": "Publish", "fingerprint": "abc", "rows": 2}
    assert older.manifest() is None and older.write_manifest({"task": "Publish", "fingerprint": "old"})
    assert older.manifest()["fingerprint"] == "old"
    with engine(production_url).connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM publish_log")).scalar() == 2
    assert json.loads(json.dumps(marker.manifest()))  # plain JSON, nothing driver specific


def test_reasons_name_the_changed_code_and_a_published_night_keeps_its_targets(scored_root, monkeypatch):
    from tasks import Publish, TransactionFeatures
    from tests.conftest import SCORE_DATE

    day = SCORE_DATE - dt.timedelta(days=1)
    daily, features = TransactionDaily(date=day), TransactionFeatures(date=SCORE_DATE)
    assert provenance.night_provenance(SCORE_DATE).stale == []
    edited = FEATURES.replace("spend = F.when(amount > 0, amount)", "spend = F.when(amount >= 0, amount)")
    monkeypatch.setattr(provenance, "_recipes", recipes_with({"tasks.features": edited}))
    recipe_of.cache_clear()
    try:
        report = provenance.night_provenance(SCORE_DATE)
        stale = {entry.task: entry for entry in report.stale}
        assert stale[daily].reasons == ["code changed: aggregate_days"] and not stale[daily].stays
        first = SCORE_DATE - dt.timedelta(days=7)
        assert stale[features].reasons == [f"input stale: 7 partitions, features/transactions_daily/date={first} … "
                                           f"features/transactions_daily/date={day}"]
        assert stale[features].stays and report.published
        assert not daily.complete(), "rebuilt by the next run that needs it"
        assert features.complete() and Publish(date=SCORE_DATE).complete(), "the published night stays as it is"
    finally:
        monkeypatch.undo()
        recipe_of.cache_clear()

    monkeypatch.setattr(TransactionDaily, "recipe_version", 1)
    recipe_of.cache_clear()
    try:
        assert provenance.Provenance().reasons(daily) == ["recipe forced: TransactionDaily.recipe_version 0 → 1"]
    finally:
        monkeypatch.undo()
        recipe_of.cache_clear()

"""nightshift.sample: layout, schemas, determinism, bad rows, drift, concept drift and labels of the generator."""
import contextlib
import csv
import datetime as dt
import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from nightshift.sample import main

WRAPPER = Path(__file__).resolve().parents[2] / "bin" / "make-sample-data"
END = dt.date(2026, 2, 28)

# The valid salary texts the generator documents; anything else is a bad row.
_SEP = r"\d{1,3}(?:[ \u00a0]\d{3})+"
VALID_SALARY = {
    "N р/мес": (rf"({_SEP}) р/мес", 1),
    "N руб/мес": (r"(\d+) руб/мес", 1),
    "N руб.": (rf"({_SEP}) руб\.", 1),
    "N": (r"(\d+)", 1),
    "N N": (rf"({_SEP})", 1),
    "N тыс. руб/мес": (r"(\d+) тыс\. руб/мес", 1000),
    "Nк": (r"(\d+)к", 1000),
    "N р/год": (rf"({_SEP}) р/год", 1 / 12),
    "N,N млн р/год": (r"(\d+(?:,\d)?) млн р/год", 1e6 / 12),
    "N ₽": (rf"({_SEP}) ₽", 1),
}


def run(root, *args, days=4, clients=300, check=True):
    """main() in this process, its exit code and output captured like a subprocess's."""
    argv = ["--root", str(root), "--end", END.isoformat(), "--days", str(days), "--clients", str(clients),
            *map(str, args)]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code
    result = SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())
    if check:
        assert result.returncode == 0, result.stderr
    return result


def day(offset):
    return END + dt.timedelta(days=offset)


def partitions(root, kind):
    folder = Path(root, *kind.split("/"))
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def dts(first, last):
    return [f"dt={day(k).isoformat()}" for k in range(first, last + 1)]


def salary_per_month(text):
    """A reference reading of the documented formats: roubles per month, None for empty, raises if bad."""
    if text == "":
        return None
    for pattern, factor in VALID_SALARY.values():
        match = re.fullmatch(pattern, text)
        if match:
            number = float(re.sub(r"[ \u00a0]", "", match.group(1)).replace(",", "."))
            value = number * factor
            if not 1_000 <= value <= 10_000_000:
                raise ValueError(f"implausible salary {text!r}")
            return value
    raise ValueError(f"unparseable salary {text!r}")


def bad_row_mask(frame):
    """Rows a parser must quarantine: bad sex, age or salary, and every row of a duplicated client_id."""
    def bad_salary(text):
        try:
            salary_per_month(text)
            return False
        except ValueError:
            return True

    age_ok = frame.age.str.fullmatch(r"\d+") & pd.to_numeric(frame.age, errors="coerce").between(18, 100)
    return (~frame.sex.isin(["М", "Ж", "M", "F"]) | ~age_ok | frame.salary.map(bad_salary)
            | frame.client_id.duplicated(keep=False))


def read_clients(path, encoding="utf-8"):
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    result = run(root, "--seed", 11, "--label-lag", 2, days=4, clients=300)
    return root, result


def test_every_partition_has_its_file_and_success_flag(small):
    root, _ = small
    assert partitions(root, "raw/clients") == dts(-3, 0)
    assert partitions(root, "raw/transactions") == dts(-3, 0)
    assert partitions(root, "truth") == dts(-2, 1)
    # labels of scoring date S land label_lag days later: only S + 2 <= END, and S - 1 must be a snapshot
    assert partitions(root, "raw/labels") == dts(-2, -2)
    expected = {"raw/clients": "clients.csv", "raw/transactions": "part-00000.parquet",
                "raw/labels": "labels.csv", "truth": "truth.parquet"}
    for kind, name in expected.items():
        for part in partitions(root, kind):
            assert sorted(os.listdir(Path(root, *kind.split("/"), part))) == ["_SUCCESS", name]
            assert Path(root, *kind.split("/"), part, "_SUCCESS").stat().st_size == 0


def test_files_have_the_contract_header_and_schema(small):
    root, result = small
    clients = Path(root, "raw/clients", f"dt={END}", "clients.csv").read_bytes()
    assert clients.startswith(b"client_id,sex,age,salary\n")
    rows = list(csv.reader(io.StringIO(clients.decode("utf-8"))))
    assert all(len(row) == 4 for row in rows)
    assert len(rows) > 300
    assert all(re.fullmatch(r"\d+", row[0]) for row in rows[1:])

    tx = pq.read_table(Path(root, "raw/transactions", f"dt={END}", "part-00000.parquet"))
    assert tx.schema.remove_metadata() == pa.schema([
        ("client_id", pa.int64()), ("ts", pa.timestamp("us")), ("amount", pa.float64()),
        ("category", pa.string())])
    assert tx.num_rows > 0

    truth = pq.read_table(Path(root, "truth", f"dt={day(1)}", "truth.parquet"))
    assert truth.schema.remove_metadata() == pa.schema([("client_id", pa.int64()), ("p_default", pa.float64())])

    labels = Path(root, "raw/labels", f"dt={day(-2)}", "labels.csv").read_text()
    assert labels.startswith("client_id,defaulted\n")
    assert set(pd.read_csv(io.StringIO(labels)).defaulted) <= {0, 1}
    assert "make-sample-data: 4 days" in result.stdout
    assert len(result.stderr.strip().splitlines()) == 4


def test_transactions_fall_inside_their_day_except_the_few_bad_rows(tmp_path):
    run(tmp_path, "--seed", 5, days=2, clients=20_000)
    frame = pq.read_table(Path(tmp_path, "raw/transactions", f"dt={END}", "part-00000.parquet")).to_pandas()
    start = pd.Timestamp(END)
    bad = (frame.client_id.isna() | ~np.isfinite(frame.amount)
           | (frame.ts < start) | (frame.ts >= start + pd.Timedelta(days=1)))
    assert 0 < bad.sum() < 0.002 * len(frame)
    good = frame[~bad]
    assert set(good.category) == {"grocery", "restaurants", "transport", "utilities", "electronics", "travel",
                                  "cash_withdrawal", "gambling", "online_shopping"}
    assert 0.01 < (good.amount < 0).mean() < 0.04
    assert 0.2 < len(good) / 20_000 < 0.4


def test_the_same_seed_writes_identical_files_and_another_seed_does_not(small, tmp_path):
    root, _ = small
    again, other = tmp_path / "again", tmp_path / "other"
    run(again, "--seed", 11, "--label-lag", 2, days=4, clients=300)
    run(other, "--seed", 12, "--label-lag", 2, days=4, clients=300)
    files = sorted(p.relative_to(root) for p in Path(root).rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for name in files:
        assert (root / name).read_bytes() == (again / name).read_bytes(), name
    differs = [name for name in files if name.name != "_SUCCESS"
               and (root / name).read_bytes() != (other / name).read_bytes()]
    assert len(differs) == len([name for name in files if name.name != "_SUCCESS"])


def test_population_is_stable_from_day_to_day(tmp_path):
    run(tmp_path, "--seed", 3, "--bad-rate", 0, days=3, clients=5_000)
    first = read_clients(Path(tmp_path, "raw/clients", f"dt={day(-2)}", "clients.csv")).set_index("client_id")
    last = read_clients(Path(tmp_path, "raw/clients", f"dt={END}", "clients.csv")).set_index("client_id")
    common = first.index.intersection(last.index)
    assert len(common) > 0.99 * len(first)
    pd.testing.assert_frame_equal(first.loc[common], last.loc[common])
    joined = last.index.difference(first.index)
    assert (joined.astype(int) > first.index.astype(int).max()).all()


def test_bad_client_rows_are_present_but_below_the_quarantine_gate(tmp_path):
    run(tmp_path, "--seed", 8, days=2, clients=3_000)
    for part in partitions(tmp_path, "raw/clients"):
        frame = read_clients(Path(tmp_path, "raw/clients", part, "clients.csv"))
        share = bad_row_mask(frame).mean()
        assert 0 < share < 0.01, (part, share)
        assert frame.client_id.duplicated().sum() >= 1
        valid = frame[~bad_row_mask(frame)]
        kinds = {name for name, (pattern, _) in VALID_SALARY.items()
                 if valid.salary.str.fullmatch(pattern).any()}
        assert kinds == set(VALID_SALARY)
        assert valid.salary.str.contains("\u00a0").any()
        assert 0.01 < (valid.salary == "").mean() < 0.06
        assert set(valid.sex) == {"М", "Ж", "M", "F"}
        assert (valid.sex.isin(["М", "Ж"])).mean() > 0.9
        assert pd.to_numeric(valid.age).between(18, 85).all()


def test_no_bad_rows_with_bad_rate_zero(tmp_path):
    run(tmp_path, "--seed", 8, "--bad-rate", 0, days=1, clients=3_000)
    frame = read_clients(Path(tmp_path, "raw/clients", f"dt={END}", "clients.csv"))
    assert not bad_row_mask(frame).any()


def test_cp1251_snapshot_reads_back_with_that_encoding(tmp_path):
    run(tmp_path, "--seed", 2, "--encoding", "cp1251", days=1, clients=2_000)
    raw = Path(tmp_path, "raw/clients", f"dt={END}", "clients.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    frame = read_clients(io.BytesIO(raw), encoding="cp1251")
    assert list(frame.columns) == ["client_id", "sex", "age", "salary"]
    assert {"М", "Ж"} <= set(frame.sex)
    assert not frame.salary.str.contains("₽").any()


def test_drift_shifts_the_true_risk_of_the_last_day_only(tmp_path):
    calm, drifted = tmp_path / "calm", tmp_path / "drifted"
    run(calm, "--seed", 4, days=3, clients=3_000)
    run(drifted, "--seed", 4, "--drift", 1.0, days=3, clients=3_000)

    def mean_p(root, date):
        return pq.read_table(Path(root, "truth", f"dt={date}", "truth.parquet")).column("p_default").to_numpy().mean()

    assert mean_p(drifted, day(1)) > 2 * mean_p(calm, day(1))
    changed = sorted(str(p.relative_to(calm)) for p in calm.rglob("*.*")
                     if p.read_bytes() != (drifted / p.relative_to(calm)).read_bytes())
    assert changed == [f"raw/clients/dt={END}/clients.csv", f"raw/transactions/dt={END}/part-00000.parquet",
                       f"truth/dt={day(1)}/truth.parquet"]
    salary = read_clients(Path(drifted, "raw/clients", f"dt={END}", "clients.csv")).salary
    calm_salary = read_clients(Path(calm, "raw/clients", f"dt={END}", "clients.csv")).salary
    assert salary.map(lambda s: _safe(salary_per_month, s)).median() < \
        0.5 * calm_salary.map(lambda s: _safe(salary_per_month, s)).median()


def test_concept_drift_changes_how_labels_relate_to_the_features_from_its_date_on(tmp_path):
    calm, shifted = tmp_path / "calm", tmp_path / "shifted"
    since = day(-4)
    run(calm, "--seed", 6, "--label-lag", 1, days=12, clients=5_000)
    run(shifted, "--seed", 6, "--label-lag", 1, "--concept-drift-from", since, days=12, clients=5_000)

    changed = sorted(str(p.relative_to(calm)) for p in calm.rglob("*.*")
                     if p.read_bytes() != (shifted / p.relative_to(calm)).read_bytes())
    assert changed == sorted([f"raw/labels/dt={day(k)}/labels.csv" for k in range(-4, 0)]
                             + [f"truth/dt={day(k)}/truth.parquet" for k in range(-4, 2)])

    def labelled(root, first, last):
        """(old true probability, label) pairs of scoring dates first..last; `calm` holds the old truth."""
        frames = []
        for k in range(first, last + 1):
            truth = pq.read_table(Path(calm, "truth", f"dt={day(k)}", "truth.parquet")).to_pandas()
            labels = pd.read_csv(Path(root, "raw/labels", f"dt={day(k)}", "labels.csv"))
            frames.append(truth.merge(labels, on="client_id", validate="1:1"))
        frame = pd.concat(frames)
        return frame.p_default.to_numpy(), frame.defaulted.to_numpy()

    before = roc_auc_score(*labelled(shifted, -10, -5)[::-1])
    after = roc_auc_score(*labelled(shifted, -4, -1)[::-1])
    unshifted = roc_auc_score(*labelled(calm, -4, -1)[::-1])
    assert before > 0.68 and unshifted > 0.68
    assert after < min(before, unshifted) - 0.1, (before, unshifted, after)

    # the new labels follow the new truth, and the default rate is about the same as before
    new_p = np.concatenate([pq.read_table(Path(shifted, "truth", f"dt={day(k)}", "truth.parquet"))
                            .column("p_default").to_numpy() for k in range(-4, 0)])
    _, new_y = labelled(shifted, -4, -1)
    assert roc_auc_score(new_y, new_p) > after + 0.05
    old_p, _ = labelled(calm, -4, -1)
    assert abs(new_p.mean() - old_p.mean()) < 0.2 * old_p.mean()


def _safe(parse, text):
    try:
        return parse(text)
    except ValueError:
        return None


def test_labels_are_the_snapshot_clients_and_track_the_true_probability(tmp_path):
    run(tmp_path, "--seed", 6, "--label-lag", 1, days=8, clients=5_000)
    assert partitions(tmp_path, "raw/labels") == dts(-6, -1)
    labelled, truths = [], []
    for part in partitions(tmp_path, "raw/labels"):
        score_date = dt.date.fromisoformat(part[3:])
        labels = pd.read_csv(Path(tmp_path, "raw/labels", part, "labels.csv"))
        truth = pq.read_table(Path(tmp_path, "truth", part, "truth.parquet")).to_pandas()
        snapshot = read_clients(Path(tmp_path, "raw/clients", f"dt={score_date - dt.timedelta(days=1)}",
                                     "clients.csv"))
        assert sorted(labels.client_id) == sorted(truth.client_id) == sorted(set(snapshot.client_id.astype(int)))
        labelled.append(labels.defaulted.to_numpy())
        truths.append(truth.p_default.to_numpy())
    y, p = np.concatenate(labelled), np.concatenate(truths)
    assert 0.02 < p.mean() < 0.12
    assert abs(y.mean() - p.mean()) < 4 * np.sqrt(p.mean() * (1 - p.mean()) / len(y))
    # the truth carries signal: the riskiest fifth defaults far more often than the safest fifth
    order = np.argsort(p)
    fifth = len(p) // 5
    assert y[order[-fifth:]].mean() > 3 * y[order[:fifth]].mean()


def test_base_rate_with_a_full_window_is_about_five_to_eight_percent(tmp_path):
    run(tmp_path, "--seed", 9, days=32, clients=4_000)
    p = pq.read_table(Path(tmp_path, "truth", f"dt={day(1)}", "truth.parquet")).column("p_default").to_numpy()
    assert 0.05 <= p.mean() <= 0.08


def test_rerun_replaces_a_partition_and_cleans_leftovers(small, tmp_path):
    root = tmp_path / "again"
    run(root, "--seed", 11, "--label-lag", 2, days=4, clients=300)
    folder = root / "raw/clients" / f"dt={END}"
    (folder / ".clients.csv.tmp-12345").write_text("half a file")
    (folder / "clients.csv").write_text("client_id,sex,age,salary\n1,М,40,\n")
    run(root, "--seed", 11, "--label-lag", 2, days=4, clients=300)
    assert sorted(os.listdir(folder)) == ["_SUCCESS", "clients.csv"]
    original, _ = small
    assert (folder / "clients.csv").read_bytes() == (original / "raw/clients" / f"dt={END}" / "clients.csv").read_bytes()


def test_a_killed_run_leaves_no_flagged_partition_with_partial_data(tmp_path):
    cmd = [sys.executable, "-m", "nightshift.sample", "--root", str(tmp_path), "--end", END.isoformat(),
           "--days", "60", "--clients", "50000", "--seed", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(partitions(tmp_path, "raw/transactions")) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode != 0, "the run finished before it could be killed"
    flagged = [p.parent for p in tmp_path.rglob("_SUCCESS")]
    assert flagged
    for folder in flagged:
        data = [p for p in folder.iterdir() if not p.name.startswith((".", "_"))]
        assert len(data) == 1, folder
        if data[0].suffix == ".parquet":
            assert pq.read_table(data[0]).num_rows > 0
        else:
            text = data[0].read_text()
            assert text.endswith("\n") and len(text.splitlines()) > 40_000


@pytest.mark.parametrize("args, message", [
    (["--end", "2026-02-30"], "--end"),
    (["--end", "28.02.2026"], "--end"),
    (["--days", "0"], "--days"),
    (["--clients", "-5"], "--clients"),
    (["--clients", "many"], "--clients"),
    (["--bad-rate", "1.5"], "--bad-rate"),
    (["--drift", "nan"], "--drift"),
    (["--encoding", "latin-1"], "--encoding"),
])
def test_bad_arguments_fail_with_a_clear_message(tmp_path, args, message):
    base = {"--end": END.isoformat(), "--days": "2", "--clients": "10"}
    for key, value in zip(args[::2], args[1::2]):
        base[key] = value
    result = run(tmp_path, *[x for pair in base.items() for x in pair], check=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "raw").exists()


def test_missing_required_argument_is_named(tmp_path):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        main(["--root", str(tmp_path), "--days", "2"])
    assert exit_.value.code == 2
    assert "--end" in err.getvalue() and "--clients" in err.getvalue()


def test_the_bin_wrapper_runs_the_module_with_root_relative_to_the_caller(tmp_path):
    """bin/make-sample-data is the operators' entry: same files as main(), --root taken from the caller's cwd."""
    if not (WRAPPER.parents[1] / ".venv" / "bin" / "python").exists():
        pytest.skip("bin/make-sample-data runs the checkout's .venv, which does not exist here")
    args = ["--end", END.isoformat(), "--days", "2", "--clients", "200", "--seed", "5", "--label-lag", "0"]
    result = subprocess.run([str(WRAPPER), "--root", "via-wrapper", *args], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "make-sample-data: 2 days" in result.stdout
    run(tmp_path / "direct", *args[6:], days=2, clients=200)
    files = sorted(p.relative_to(tmp_path / "direct") for p in (tmp_path / "direct").rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(tmp_path / "via-wrapper")
                                     for p in (tmp_path / "via-wrapper").rglob("*") if p.is_file())
    for name in files:
        assert (tmp_path / "via-wrapper" / name).read_bytes() == (tmp_path / "direct" / name).read_bytes(), name

    helped = subprocess.run([str(WRAPPER), "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "--concept-drift-from" in helped.stdout

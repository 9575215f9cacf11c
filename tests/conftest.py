"""Shared fixtures: Luigi state reset per test, config overlays under tmp_path, generated sample data."""
import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import luigi
import luigi.configuration
import luigi.execution_summary
import pytest
from luigi.task_register import Register

REPO = Path(__file__).resolve().parents[1]

# Small but complete: 7-day windows, two labelled snapshots a day apart, labels after 2 days.
SCORE_DATE = dt.date(2026, 3, 2)
SAMPLE = dict(clients=600, days=12, label_lag=2, seed=11)
TEST_CONFIG = {
    "spark": {"master": "local[2]", "conf": "spark.sql.shuffle.partitions=2|spark.ui.enabled=false|spark.ui.showConsoleProgress=false"},
    "features": {"window_days": "7"},
    "model": {"retrain": "daily", "training_snapshots": "2", "snapshot_spacing_days": "1", "label_lag_days": "2"},
    "validate": {"max_quarantine_rate": "0.05"},
}


class Overlay:
    """Set luigi config values for one test; the previous values come back afterwards."""

    def __init__(self):
        self.parser = luigi.configuration.get_config()
        self.saved = []

    def set(self, section: str, key: str, value) -> None:
        had = self.parser.has_option(section, key)
        self.saved.append((section, key, self.parser.get(section, key) if had else None, had))
        if not self.parser.has_section(section):
            self.parser.add_section(section)
        self.parser.set(section, key, str(value))
        Register.clear_instance_cache()

    def restore(self) -> None:
        for section, key, value, had in reversed(self.saved):
            if had:
                self.parser.set(section, key, value)
            else:
                self.parser.remove_option(section, key)
        Register.clear_instance_cache()


@pytest.fixture(autouse=True)
def fresh_luigi():
    Register.clear_instance_cache()
    yield
    Register.clear_instance_cache()


@pytest.fixture
def overlay():
    ov = Overlay()
    yield ov
    ov.restore()


@pytest.fixture
def root(tmp_path, overlay):
    """An empty `[paths] root` under tmp_path with the small test configuration."""
    for section, values in TEST_CONFIG.items():
        for key, value in values.items():
            overlay.set(section, key, value)
    data = tmp_path / "root"
    data.mkdir()
    overlay.set("paths", "root", str(data))
    overlay.set("publish", "url", f"sqlite:///{data}/nightshift.db")
    return data


def make_sample_data(target: Path, end: dt.date, **kwargs) -> None:
    args = {**SAMPLE, **kwargs}
    cmd = [sys.executable, "-m", "nightshift.sample", "--root", str(target), "--end", end.isoformat()]
    for key, value in args.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    subprocess.run(cmd, check=True, capture_output=True)


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory):
    """Raw drops (and truth) for SCORE_DATE, generated once per session; copy before changing."""
    target = tmp_path_factory.mktemp("sample")
    make_sample_data(target, SCORE_DATE - dt.timedelta(days=1))
    return target


@pytest.fixture
def sample_root(root, sample_data):
    """`root` filled with a private copy of the session's sample drops."""
    for name in ("raw", "truth"):
        shutil.copytree(sample_data / name, root / name)
    return root


def build(*tasks, workers: int = 1) -> dict[str, set]:
    """Run tasks with the local scheduler; the execution summary's task sets by category."""
    result = luigi.build(list(tasks), local_scheduler=True, detailed_summary=True, workers=workers)
    return luigi.execution_summary._summary_dict(result.worker)


def families(tasks) -> list[str]:
    return sorted(task.task_family for task in tasks)


def overlay_on(root: Path, sections: dict) -> "Overlay":
    """An Overlay holding `sections` with every path under `root` (SQLite publish included); restore() it."""
    overlay = Overlay()
    for section, values in sections.items():
        for key, value in values.items():
            overlay.set(section, key, value)
    overlay.set("paths", "root", str(root))
    overlay.set("publish", "url", f"sqlite:///{root}/nightshift.db")
    return overlay


@pytest.fixture(scope="session")
def scored_template(tmp_path_factory, sample_data):
    """A root where DailyScoring(SCORE_DATE) already ran, built once per session; never modify it."""
    template = tmp_path_factory.mktemp("scored")
    overlay = overlay_on(template, TEST_CONFIG)
    try:
        for name in ("raw", "truth"):
            shutil.copytree(sample_data / name, template / name)
        from tasks import DailyScoring

        result = build(DailyScoring(date=SCORE_DATE))
        assert not result["failed"], result["failed"]
    finally:
        overlay.restore()
    return template


@pytest.fixture
def scored_root(root, scored_template):
    """`root` holding a private copy of a fully scored and published night (SQLite included)."""
    shutil.rmtree(root)
    shutil.copytree(scored_template, root)
    return root


def require_service(what: str, reason: str) -> None:
    """Skip a test whose service is missing on a developer's machine; under CI=true that is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required under CI=true: {reason}")
    pytest.skip(f"{what} unavailable: {reason}")


def mount_small_disk(folder: Path, size: str = "2m") -> None:
    """Mount a tmpfs of `size` at `folder`: a real filesystem that fills up (needs root and mount)."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        require_service("a tmpfs mount (root)", "mounting a small filesystem needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        require_service("a tmpfs mount", done.stderr.strip() or f"mount exited {done.returncode}")


def fill_disk(folder: Path, leave: int = 0) -> Path:
    """Take the free space of `folder`'s filesystem but `leave` bytes, with one ballast file; returns it."""
    ballast = folder / ".ballast"
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with open(ballast, "wb") as f:
        f.write(b"\0" * max(free - leave, 0))
    return ballast


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs mounted at tmp_path/disk, unmounted afterwards."""
    folder = tmp_path / "disk"
    mount_small_disk(folder)
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=True)


class Mailbox:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.messages = []
        mailbox = self

        class _Handler:
            async def handle_DATA(self, server, session, envelope):
                import email

                mailbox.messages.append(email.message_from_bytes(envelope.original_content or envelope.content))
                return "250 OK"

        import socket

        with socket.socket() as probe:  # a free port (aiosmtpd's start-up check cannot use port 0)
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(_Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        """Stop listening (the port is then closed); stopping twice is harmless."""
        if self.controller.loop.is_running():
            self.controller.stop()


@pytest.fixture
def mailbox(overlay):
    """An SMTP server on a free port, with `[email]`/`[smtp]` pointing at it for the test."""
    box = Mailbox()
    overlay.set("email", "receiver", "oncall@example.com")
    overlay.set("email", "sender", "nightshift@example.com")
    overlay.set("email", "force_send", "true")  # Luigi skips mail when stdout is a terminal (pytest -s)
    overlay.set("smtp", "host", "127.0.0.1")
    overlay.set("smtp", "port", box.port)
    yield box
    box.stop()


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh PostgreSQL database on 127.0.0.1:5432 for the session, dropped afterwards."""
    import uuid

    import sqlalchemy as sa

    admin_url = os.environ.get("NIGHTSHIFT_TEST_POSTGRES", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
    name = f"nightshift_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError as exc:
        require_service("PostgreSQL on 127.0.0.1:5432", str(exc).splitlines()[0])
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    yield url
    from targets.sql import engine

    engine(url).dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


DRIFT_DATE = SCORE_DATE + dt.timedelta(days=1)


@pytest.fixture(scope="session")
def drifted_drop(tmp_path_factory):
    """Raw drops of SCORE_DATE (the snapshot DRIFT_DATE scores) with the population shifted (--drift 1.0)."""
    target = tmp_path_factory.mktemp("drifted")
    make_sample_data(target, SCORE_DATE, days=SAMPLE["days"] + 1, drift=1.0)
    return target


def add_drifted_day(root: Path, drop: Path) -> None:
    """Put the drifted day's raw partitions into a scored root, so DRIFT_DATE can be scored next."""
    for kind in ("clients", "transactions"):
        shutil.copytree(drop / "raw" / kind / f"dt={SCORE_DATE}", root / "raw" / kind / f"dt={SCORE_DATE}")


@pytest.fixture(params=["sqlite", "postgresql"])
def production_url(request, tmp_path):
    """An empty production database: a SQLite file, and a fresh PostgreSQL database without our tables."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/prod.db"
    import sqlalchemy as sa

    from targets.sql import engine

    base = request.getfixturevalue("postgres_url")
    with engine(base).begin() as conn:
        conn.execute(sa.text("DROP VIEW IF EXISTS predictions_latest"))
        conn.execute(sa.text("DROP TABLE IF EXISTS predictions, publish_log"))
    return base

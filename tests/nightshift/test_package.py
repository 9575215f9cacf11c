"""The core package stays pure: importing any of its modules loads no luigi, SQLAlchemy, Spark session, tasks or targets."""
import subprocess
import sys

from tests.conftest import REPO

PROBE = """
import importlib, pkgutil, sys
import nightshift
for module in pkgutil.iter_modules(nightshift.__path__):
    importlib.import_module("nightshift." + module.name)
print(sorted(name for name in sys.modules if name.split(".")[0] in ("luigi", "sqlalchemy", "tasks", "targets")
             or name == "pyspark.sql.session"))
"""


def test_importing_every_core_module_loads_no_luigi_database_spark_session_or_tasks():
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"

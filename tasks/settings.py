"""Settings checks: every nightshift setting is validated when a run starts, before a JVM or any file.

The known sections and keys are the parameters of nightshift's `luigi.Config` classes (tasks/config.py and any
other `tasks` module), so a key added there is known here without a list to keep in step. The rules below are
data: one range per key, a few extra checks (time zone, encoding, URL, ...) and cross-key rules. `check()`
reports every broken rule in one `ConfigurationError`, one line, naming section, key, value and rule.

`install()` (called when `tasks` is imported) makes every Luigi run of the process check first: `luigi --module
tasks ...`, `RangeDaily` backfills, `bin/run-daily` and `luigi.build(...)` all go through
`luigi.interface._schedule_and_run` once per run, before its lock, its scheduler and any `complete()`.
"""
import codecs
import difflib
import functools
import math
import re
import warnings
from typing import Any, Callable

import luigi
import luigi.configuration
import luigi.interface
import luigi.parameter

from tasks.errors import ConfigurationError

Rule = tuple[str, Callable[[Any], bool]]


def above(bound: float) -> Rule:
    return f"must be > {bound}", lambda value: value > bound


def at_least(bound: float) -> Rule:
    return f"must be >= {bound}", lambda value: value >= bound


def between(low: float, high: float) -> Rule:
    return f"must be between {low} and {high}", lambda value: low <= value <= high


def _zone(name: str) -> bool:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _encoding(name: str) -> bool:
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True


def _key_values(text: str) -> bool:
    from targets.fs import parse_options

    try:
        parse_options(text, "")
    except ConfigurationError:
        return False
    return True


def _database_url(text: str) -> bool:
    import sqlalchemy as sa

    try:
        sa.engine.make_url(text)
    except sa.exc.ArgumentError:
        return False
    return True


SPARK_LOG_LEVELS = ("ALL", "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF")

# One rule per key, checked on its effective value (luigi.cfg, the overlay, the command line). Keys a section
# does not have (yet) are skipped.
RULES: dict[tuple[str, str], Rule] = {
    ("raw", "timezone"): ("must be an IANA time zone such as UTC or Europe/Moscow", _zone),
    ("raw", "encoding"): ("not a known encoding (e.g. utf-8, cp1251)", _encoding),
    ("raw", "salary_min"): at_least(0),
    ("raw", "age_min"): at_least(0),
    ("spark", "master"): ("must be a Spark master URL (local[*], spark://host:7077, yarn, ...) or sc://host:port",
                          lambda v: bool(v) and (not v.startswith("sc:") or re.fullmatch(r"sc://[^/:]+(:\d+)?(/.*)?", v))),
    ("spark", "server_master"): ("must not be empty", bool),
    ("spark", "driver_memory"): ("must be a JVM size such as 512m or 2g",
                                 lambda v: re.fullmatch(r"\d+[kmgt]?b?", v.strip().lower()) is not None),
    ("spark", "log_level"): (f"must be one of {', '.join(SPARK_LOG_LEVELS)}", lambda v: v.upper() in SPARK_LOG_LEVELS),
    ("spark", "conf"): ("must be key=value items, one per line or |-separated", _key_values),
    ("paths", "root"): ("must not be empty", bool),
    ("paths", "filesystem_options"): ("must be key=value items, one per line or |-separated", _key_values),
    ("features", "window_days"): above(0),
    ("model", "training_snapshots"): at_least(2),
    ("model", "min_training_snapshots"): ("must be >= 2 (one snapshot to train on, the newest as holdout)",
                                          lambda v: v >= 2),
    ("model", "snapshot_spacing_days"): above(0),
    ("model", "label_lag_days"): at_least(0),
    ("model", "seed"): between(0, 2**32 - 1),
    ("model", "max_rows_per_snapshot"): above(0),
    ("validate", "psi_warn"): at_least(0),
    ("validate", "psi_fail"): above(0),
    ("validate", "max_quarantine_rate"): between(0, 1),
    ("validate", "max_mean_shift"): at_least(0),
    ("validate", "volume_window_days"): above(0),
    ("validate", "min_volume_ratio"): ("must be between 0 (off) and 1", lambda v: 0 <= v <= 1),
    ("validate", "max_volume_ratio"): ("must be 0 (off) or >= 1", lambda v: v == 0 or v >= 1),
    ("validate", "min_snapshot_ratio"): ("must be between 0 (off) and 1", lambda v: 0 <= v <= 1),
    ("publish", "url"): ("must be empty or an SQLAlchemy URL such as postgresql+psycopg2://host:5432/db",
                         lambda v: not v or _database_url(v)),
    ("monitor", "max_auc_drop"): between(0, 1),
    ("monitor", "min_auc"): between(0, 1),
    ("monitor", "lookback_days"): above(0),
    ("alerts", "webhook_url"): ("must be empty or an http(s):// URL", lambda v: not v or v.startswith(("http://", "https://"))),
    ("cron", "catchup_days"): above(0),
    ("cron", "log_keep_days"): above(0),
    ("cron", "log_dir"): ("must not be empty", bool),
    ("cron", "lock_file"): ("must not be empty", bool),
}

# (section, smaller key, larger key, may be equal, why): checked when both keys exist.
ORDER = [
    ("validate", "psi_warn", "psi_fail", False, "else the warn level never shows"),
    ("raw", "salary_min", "salary_max", False, "else every salary is out of bounds"),
    ("raw", "age_min", "age_max", False, "else every age is out of bounds"),
    ("model", "min_training_snapshots", "training_snapshots", True, "a training set could never be big enough"),
]


def config_classes() -> list[type]:
    """nightshift's luigi.Config classes: one per section, named after it, defined in the `tasks` modules."""
    found, stack = [], [luigi.Config]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            stack.append(sub)
            if sub.__module__.split(".")[0] == "tasks":
                found.append(sub)
    return sorted({cls.get_task_family(): cls for cls in found}.values(), key=lambda cls: cls.get_task_family())


def _expects(param: luigi.Parameter) -> str:
    if isinstance(param, luigi.ChoiceParameter):
        return "one of " + ", ".join(sorted(map(str, param._choices)))
    if isinstance(param, luigi.BoolParameter):
        return "true or false"
    if isinstance(param, luigi.IntParameter):
        return "an integer"
    if isinstance(param, luigi.FloatParameter):
        return "a number"
    return "a valid value"


def problems() -> list[str]:
    """Every broken rule of the current settings, each a line naming section, key, value and rule."""
    parser = luigi.configuration.get_config()
    found: list[str] = []
    values: dict[tuple[str, str], Any] = {}
    for cls in config_classes():
        section = cls.get_task_family()
        params = dict(cls.get_params())
        known = set(params) | {name.replace("_", "-") for name in params}
        if parser.has_section(section):
            defaults = set(parser.defaults())
            for key in parser.options(section):
                if key in known or key in defaults:
                    continue
                close = difflib.get_close_matches(key.replace("-", "_"), sorted(params), n=1)
                hint = f"; did you mean {close[0]}?" if close else f"; known keys: {', '.join(sorted(params))}"
                found.append(f"[{section}] {key}: unknown key{hint}")
        bad_type = False
        for name, param in params.items():
            for key in (name, name.replace("_", "-")):
                if parser.has_option(section, key):
                    raw = parser.get(section, key)
                    try:
                        param.normalize(param.parse(raw))
                    except (ValueError, TypeError):
                        found.append(f"[{section}] {key} = {raw!r}: expected {_expects(param)}")
                        bad_type = True
                    break
        if bad_type:
            continue
        try:
            with warnings.catch_warnings():  # luigi's own warning about unknown keys: reported above, with a hint
                warnings.simplefilter("ignore", luigi.parameter.UnconsumedParameterWarning)
                instance = cls()  # the effective values: luigi.cfg, the overlay, then `--section-key` on the command line
        except Exception as exc:
            found.append(f"[{section}]: {exc}")
            continue
        for name in params:
            value = getattr(instance, name)
            if isinstance(value, float) and not math.isfinite(value):
                found.append(f"[{section}] {name} = {value}: must be a finite number")
                continue
            values[section, name] = value
    for (section, key), (rule, ok) in RULES.items():
        if (section, key) in values and not ok(values[section, key]):
            found.append(f"[{section}] {key} = {values[section, key]!r}: {rule}")
    for section, low, high, equal, why in ORDER:
        if (section, low) in values and (section, high) in values:
            a, b = values[section, low], values[section, high]
            if a > b or (a == b and not equal):
                relation = "<=" if equal else "<"
                found.append(f"[{section}] {low} = {a!r}, {high} = {b!r}: must be {low} {relation} {high} ({why})")
    return sorted(found)  # section by section


RUN_HEADLINE = "invalid settings, nothing was run"


def check(headline: str = "invalid settings") -> None:
    """Raise one ConfigurationError, `headline: ` and every broken rule (nothing when the settings are sound)."""
    found = problems()
    if found:
        raise ConfigurationError(f"{headline}: {'; '.join(found)}")


def install() -> None:
    """Check the settings at the start of every Luigi run of this process (once per run, before any work)."""
    original = luigi.interface._schedule_and_run
    if getattr(original, "checks_settings", False):
        return

    @functools.wraps(original)
    def checked(*args, **kwargs):
        check(RUN_HEADLINE)
        return original(*args, **kwargs)

    checked.checks_settings = True
    luigi.interface._schedule_and_run = checked

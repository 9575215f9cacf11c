"""Provenance: the manifest every output carries, and whether its task would record the same one now.

A manifest (`_manifest.json` in a folder, the `manifest` column of a publish_log row) records the task and its
parameters, the recipe (a fingerprint of the code that computes the output), the settings it read, the
fingerprints of its inputs, and one `fingerprint` over these three. A target is stale when that fingerprint
differs from the one its task would record now. `Recorded` makes a stale target incomplete, so the run that
needs it rebuilds it; a scoring night's own targets stay as they are once the night is published. Everything
here reads manifests, file listings and source files: no data, no Spark, no import of the code it fingerprints.
See docs/provenance.md.
"""
import ast
import datetime as dt
import functools
import hashlib
import importlib.util
import json
import os
import platform
from importlib import metadata
from typing import Any, Callable, Iterable, NamedTuple

import luigi
from luigi.task import flatten

from targets import fs
from targets.directory import SUCCESS

# Settings that hold secrets never enter a manifest (they change where output goes, not what it is).
SECRET_SETTINGS = {"publish.url"}
# Stage code is followed into these packages; within them, these modules are wiring, not computation.
FOLLOWED_PACKAGES = ("nightshift", "tasks")
NOT_RECIPE = {
    "nightshift.errors", "nightshift.sample",
    "tasks.alerts", "tasks.config", "tasks.errors", "tasks.graph", "tasks.pipeline", "tasks.provenance",
    "tasks.raw", "tasks.spark",
}
ABSENT = "absent"  # the fingerprint of a raw partition with no files
LIBRARIES = ("numpy", "pandas", "pyarrow", "pyspark", "scikit-learn", "luigi")


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- the recipe: code read from source files, normalised --------------------------------------------------------

def strip_docstrings(tree: ast.AST) -> ast.AST:
    """Remove the docstring of the module and of every class and function in it, in place."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body \
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return tree


def normalised(node: ast.AST) -> str:
    """The code of a definition without docstrings, comments or formatting: `ast.dump` without positions."""
    return ast.dump(node, include_attributes=False)


def module_file(name: str) -> str | None:
    """The source file of a module, found without importing it or its parent packages' submodules.

    importlib's find_spec("a.b.c") imports a.b; walking the package folders instead keeps a recipe of
    nightshift.modeling from loading scikit-learn.
    """
    top, *rest = name.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    path = spec.origin
    for part in rest:
        if not path.endswith("__init__.py"):
            return None
        folder = os.path.dirname(path)
        for candidate in (os.path.join(folder, part + ".py"), os.path.join(folder, part, "__init__.py")):
            if os.path.isfile(candidate):
                path = candidate
                break
        else:
            return None
    return path if path.endswith(".py") else None


def module_source(name: str) -> str | None:
    """A module's source text, read from its file (the module is not imported)."""
    path = module_file(name)
    if path is None:
        return None
    with open(path, encoding="utf-8") as f:
        return f.read()


def followed(module: str) -> bool:
    """Whether the code of `module` is part of the recipes of the tasks that call into it."""
    return module.split(".")[0] in FOLLOWED_PACKAGES and module not in NOT_RECIPE


class Recipes:
    """Fingerprints of code: a definition plus, transitively, the definitions of followed modules it names.

    Definitions are top-level functions, classes and assignments (a constant such as RISKY_CATEGORIES is part
    of the recipe of a function that reads it). Classes of `tasks` modules other than the root are Luigi tasks:
    their code belongs to their own outputs, which reach the caller as inputs. `source` maps a module name to
    its text (tests hand in edited text); `follow` says which modules are followed.
    """

    def __init__(self, source: Callable[[str], str | None] = module_source,
                 follow: Callable[[str], bool] = followed):
        self.source = source
        self.follow = follow
        self._modules: dict[str, dict | None] = {}
        self._is_module: dict[str, bool] = {}
        self._definitions: dict[tuple[str, str], tuple[str, set]] = {}

    def _index(self, module: str) -> dict | None:
        """Top-level names of a module: definitions (ast nodes) and imports (('module', m) / ('symbol', m, n))."""
        if module not in self._modules:
            text = self.source(module)
            self._modules[module] = None if text is None else self._names(strip_docstrings(ast.parse(text)), module)
        return self._modules[module]

    def _names(self, tree: ast.AST, module: str, top: bool = True) -> dict:
        names: dict[str, Any] = {}
        statements = tree.body if top else [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
        for node in statements:
            if top and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names[node.name] = node
            elif top and isinstance(node, (ast.Assign, ast.AnnAssign)):
                for target in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                    if isinstance(target, ast.Name):
                        names[target.id] = node
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        names[alias.asname] = ("module", alias.name)
                    else:
                        names[alias.name.split(".")[0]] = ("module", alias.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = module.rsplit(".", node.level)[0]
                    base = f"{package}.{base}" if base else package
                for alias in node.names:
                    names[alias.asname or alias.name] = ("from", base, alias.name)
        return names

    def _module_exists(self, name: str) -> bool:
        if name not in self._is_module:
            self._is_module[name] = self.source(name) is not None
        return self._is_module[name]

    def _resolve_import(self, entry) -> tuple | None:
        """('module', m) or ('symbol', m, n) for an import entry, only inside the followed packages."""
        if entry[0] == "module":
            return entry if entry[1].split(".")[0] in FOLLOWED_PACKAGES else None
        _, base, name = entry
        if base.split(".")[0] not in FOLLOWED_PACKAGES:
            return None
        if self._module_exists(f"{base}.{name}"):
            return ("module", f"{base}.{name}")
        return ("symbol", base, name)

    def _lookup(self, module: str, name: str) -> tuple | None:
        """What `name` is in `module`: a submodule, one of its definitions, or what it imported."""
        if self._module_exists(f"{module}.{name}"):
            return ("module", f"{module}.{name}")
        index = self._index(module) or {}
        entry = index.get(name)
        if entry is None:
            return None
        if isinstance(entry, tuple):
            return self._resolve_import(entry)
        return ("symbol", module, name)

    def _references(self, module: str, node: ast.AST) -> set[tuple[str, str]]:
        """(module, name) of every followed definition `node` names, through its module's and its own imports."""
        local = self._names(node, module, top=False)
        found = set()

        def resolve(name: str) -> tuple | None:
            if name in local:
                return self._resolve_import(local[name])
            return self._lookup(module, name)

        for inner in ast.walk(node):
            chain = []
            while isinstance(inner, ast.Attribute):
                chain.append(inner.attr)
                inner = inner.value
            if not isinstance(inner, ast.Name):
                continue
            what = resolve(inner.id)
            for attr in reversed(chain):
                if what is None or what[0] != "module":
                    break
                what = self._lookup(what[1], attr)
            if what is not None and what[0] == "symbol":
                found.add((what[1], what[2]))
        return found

    def _definition(self, module: str, name: str) -> tuple[str, set]:
        """Fingerprint of one definition and the followed definitions it names (cached)."""
        key = (module, name)
        if key not in self._definitions:
            node = (self._index(module) or {}).get(name)
            if node is None or isinstance(node, tuple):
                self._definitions[key] = ("source unavailable", set())
                return self._definitions[key]
            references = set()
            for ref_module, ref_name in self._references(module, node):
                if not self.follow(ref_module):
                    continue
                definition = (self._index(ref_module) or {}).get(ref_name)
                if definition is None or isinstance(definition, tuple):
                    continue  # a re-exported name, or one the module does not define at top level
                if isinstance(definition, ast.ClassDef) and ref_module.startswith("tasks."):
                    continue  # another task: its output reaches this one as an input
                references.add((ref_module, ref_name))
            digest = hashlib.sha256(normalised(node).encode()).hexdigest()[:16]
            self._definitions[key] = (digest, references)
        return self._definitions[key]

    def parts(self, roots: Iterable[tuple[str, str]]) -> dict[str, str]:
        """`module.name` → fingerprint of every definition the roots reach, the roots included."""
        roots = list(roots)
        result: dict[str, str] = {}
        stack = list(roots)
        seen = set(roots)
        while stack:
            module, name = stack.pop()
            digest, references = self._definition(module, name)
            result[f"{module}.{name}"] = digest
            for ref in references:
                if ref not in seen:
                    seen.add(ref)
                    stack.append(ref)
        return dict(sorted(result.items()))


def _root(item) -> tuple[str, str]:
    """(module, name) of a function, class or `module.name` string."""
    if isinstance(item, str):
        module, _, name = item.rpartition(".")
        return module, name
    return item.__module__, item.__qualname__


_recipes = Recipes()


@functools.cache
def recipe_of(task_class: type) -> dict:
    """{"recipe", "recipe_parts", "recipe_version"} of a task class, computed once per process."""
    # A task's own class, and the task classes it inherits code from (a subclass that overrides one method).
    classes = [c for c in task_class.__mro__
               if c is task_class or (issubclass(c, luigi.Task) and followed(c.__module__))]
    roots = [*map(_root, classes), *(_root(item) for item in getattr(task_class, "recipe_functions", ()))]
    parts = _recipes.parts(roots)
    version = getattr(task_class, "recipe_version", 0)
    return {"recipe": _digest({"parts": parts, "version": version}), "recipe_parts": parts, "recipe_version": version}


def short_name(part: str) -> str:
    """`tasks.features.aggregate_day` → `aggregate_day`: what an operator reads."""
    return part.rsplit(".", 1)[-1]


# --- settings, inputs, versions ---------------------------------------------------------------------------------

def settings(keys: Iterable[str], sections: dict | None = None) -> dict[str, Any]:
    """`section.key` → the value in effect now, read through tasks/config.py's luigi.Config classes.

    `sections` keeps the Config instances between calls (reading luigi's configuration is the costly part).
    """
    from tasks import config

    sections = {} if sections is None else sections
    values = {}
    for key in keys:
        if key in SECRET_SETTINGS:
            raise ValueError(f"{key} is a secret and never recorded in a manifest")
        section, name = key.split(".", 1)
        if section not in sections:
            sections[section] = getattr(config, section)()
        value = getattr(sections[section], name)
        values[key] = value if isinstance(value, (bool, int, float, str)) or value is None else str(value)
    return values


def partition_fingerprint(uri: str) -> str:
    """A raw partition's fingerprint from its files' names, sizes and modification times (one listing).

    The `_SUCCESS` flag and hidden files (uploads in progress) do not count: re-flagging the same files is not
    a new delivery. A rewrite that keeps every name, size and modification time is not seen (see the docs).
    """
    stats = [entry for entry in fs.file_stats(uri)
             if fs.basename(entry[0]) != SUCCESS and not fs.basename(entry[0]).startswith(".")]
    return _digest(stats) if stats else ABSENT


@functools.cache
def library_versions() -> dict[str, str]:
    """Versions of the libraries an output depends on, from package metadata (nothing is imported)."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def target_label(target) -> str:
    """Where an input is: a folder's uri, a publish marker's table and day (never its URL)."""
    uri = getattr(target, "uri", None)
    if uri is not None:
        return uri
    return f"{target.table}/score_date={target.score_date}"


def relative(uri: str, root: str | None = None) -> str:
    """A uri under `[paths] root` as an operator writes it: raw/transactions/dt=2026-03-03."""
    if root is None:
        from tasks import config

        root = config.paths().root
    root = root.rstrip("/") + "/"
    return uri[len(root):] if uri.startswith(root) else uri


def recorded_manifest(task: luigi.Task) -> dict | None:
    """The manifest the task's output holds (None: no output, or written before manifests existed)."""
    target = task.output()
    reader = getattr(target, "manifest", None)
    if reader is None or not target.exists():
        return None
    return reader()


# --- what a task would record now --------------------------------------------------------------------------------

def is_raw_drop(task: luigi.Task) -> bool:
    from tasks.raw import RawDrop

    return isinstance(task, RawDrop)


class Provenance:
    """What each task would record now, and what its output recorded: one instance per question, memoised in it.

    The fingerprint an input contributes is what its output holds once the run that needs it is done: its
    expected fingerprint (a stale input will be rebuilt first), except for an output that stays as it is
    although stale (a published night's own target), whose recorded fingerprint stands.
    """

    def __init__(self):
        self._expected: dict[tuple[str, bool], dict] = {}
        self._sources: dict[str, dict[str, luigi.Task]] = {}
        self._recorded: dict[str, dict | None] = {}
        self._published: dict[dt.date, bool] = {}
        self._sections: dict[str, luigi.Config] = {}
        self._root: str | None = None

    def _relative(self, uri: str) -> str:
        if self._root is None:
            self._root = settings(["paths.root"], self._sections)["paths.root"]
        return relative(uri, self._root)

    def recorded(self, task: luigi.Task) -> dict | None:
        if task.task_id not in self._recorded:
            self._recorded[task.task_id] = recorded_manifest(task)
        return self._recorded[task.task_id]

    def expected(self, task: luigi.Task, inputs_complete: bool = False) -> dict:
        """recipe, recipe_parts, recipe_version, config, inputs and fingerprint the task would record now.

        `inputs_complete`: every dependency is known to be complete (in run(): the scheduler runs a task only once
        its dependencies are done), so a dependency contributes the fingerprint its output recorded (`effective`
        would compute the same one) without a walk through its own inputs.
        """
        key = (task.task_id, inputs_complete)
        if key not in self._expected:
            recorded_inputs = (self.recorded(task) or {}).get("inputs") or {}
            inputs, sources = {}, {}
            for dep in flatten(task.requires()):
                fingerprint = self.effective(dep, complete=inputs_complete)
                for target in flatten(dep.output()):
                    # Relative to [paths] root: moving the whole root (a copy, a new mount) changes nothing.
                    uri = self._relative(target_label(target))
                    # A raw partition deleted after use (retention) is no new delivery: what was read stands.
                    inputs[uri] = recorded_inputs.get(uri, fingerprint) if fingerprint == ABSENT else fingerprint
                    sources[uri] = dep
            values = {**recipe_of(type(task)), "config": settings(getattr(task, "config_keys", ()), self._sections),
                      "inputs": dict(sorted(inputs.items()))}
            values["fingerprint"] = _digest({k: values[k] for k in ("recipe", "config", "inputs")})
            self._expected[key] = values
            self._sources[task.task_id] = sources
        return self._expected[key]

    def effective(self, task: luigi.Task, complete: bool = False) -> str:
        """The fingerprint `task`'s output contributes to the tasks that read it (`complete`: its output is known
        to be complete, so not stale unless it stays, and what it recorded is that fingerprint either way)."""
        if is_raw_drop(task):
            return partition_fingerprint(target_label(task.output()))
        if not isinstance(task, Recorded):
            return "unrecorded"
        recorded = self.recorded(task)
        if recorded is not None and "fingerprint" in recorded and (complete or self.stays(task)):
            return recorded["fingerprint"]  # kept as it is, stale or not: what it holds is what readers get
        return self.expected(task)["fingerprint"]

    def is_stale(self, task: luigi.Task) -> bool:
        """Recorded with another fingerprint than the task would record now (no manifest: unknown, not stale;
        an unreadable one proves nothing: stale)."""
        recorded = self.recorded(task)
        return recorded is not None and recorded.get("fingerprint") != self.expected(task)["fingerprint"]

    def published(self, day: dt.date) -> bool:
        if day not in self._published:
            from tasks.publish import Publish

            self._published[day] = Publish(date=day).complete()
        return self._published[day]

    def stays(self, task: luigi.Task) -> bool:
        """Whether the output is kept even when stale: Publish's marker, a published night's own targets.

        Asked before staleness, so a published night costs its complete() one publish_log lookup, not a walk.
        """
        return not task.rebuild_when_stale or (task.frozen_by_publish and self.published(task.date))

    def must_rebuild(self, task: luigi.Task) -> bool:
        return not self.stays(task) and self.is_stale(task)

    def manifest(self, task: luigi.Task, rows: int | None = None, inputs_complete: bool = True) -> dict:
        """The manifest `task` writes with its output now: by default from its run(), where its dependencies are
        complete (see `expected`)."""
        return {
            "task": task.task_family,
            "params": task.to_str_params(only_significant=True),
            **self.expected(task, inputs_complete=inputs_complete),
            "versions": library_versions(),
            "rows": rows,
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }

    def reasons(self, task: luigi.Task) -> list[str]:
        """Why a stale target is stale, in an operator's words."""
        recorded, expected = self.recorded(task) or {}, self.expected(task)
        if "unreadable" in recorded:
            return [f"manifest unreadable: {recorded['unreadable']}"]
        reasons = []
        old_parts, new_parts = recorded.get("recipe_parts") or {}, expected["recipe_parts"]
        code = sorted({short_name(p) for p in set(old_parts) | set(new_parts) if old_parts.get(p) != new_parts.get(p)})
        if recorded.get("recipe") != expected["recipe"]:
            if recorded.get("recipe_version", 0) != expected["recipe_version"]:
                reasons.append(f"recipe forced: {task.task_family}.recipe_version "
                               f"{recorded.get('recipe_version', 0)} → {expected['recipe_version']}")
            if code:
                reasons.append(f"code changed: {', '.join(code)}")
            elif not reasons:
                reasons.append("code changed")
        old_config, new_config = recorded.get("config") or {}, expected["config"]
        for key in sorted(set(old_config) | set(new_config)):
            if old_config.get(key) != new_config.get(key):
                section, name = key.split(".", 1)
                before = old_config.get(key, "(not recorded)")
                after = new_config.get(key, "(no longer read)")
                reasons.append(f"setting changed: [{section}] {name} {before} → {after}")
        reasons.extend(self._input_reasons(task, recorded.get("inputs") or {}, expected["inputs"]))
        return reasons or ["fingerprint differs"]

    def _input_reasons(self, task: luigi.Task, old: dict, new: dict) -> list[str]:
        sources = self._sources[task.task_id]
        groups: dict[str, list[str]] = {}
        for uri in sorted(set(old) | set(new)):
            if old.get(uri) == new.get(uri):
                continue
            if uri not in new:
                kind = "input no longer read"
            elif uri not in old:
                kind = "input added"
            elif is_raw_drop(sources[uri]):
                kind = "input re-delivered"
            elif isinstance(sources[uri], Recorded) and self.must_rebuild(sources[uri]):
                kind = "input stale"
            else:
                kind = "input rebuilt"
            groups.setdefault(kind, []).append(uri)
        reasons = []
        for kind, uris in groups.items():
            if len(uris) <= 3:
                reasons.extend(f"{kind}: {uri}" for uri in uris)
            else:
                reasons.append(f"{kind}: {len(uris)} partitions, {uris[0]} … {uris[-1]}")
        return reasons


class Recorded:
    """Mixin for a task whose output carries a manifest; put it first among the bases.

    Its output is complete when it exists and is not stale: a stale output is rebuilt by the run that needs it,
    unless it stays (a published night's own target when `frozen_by_publish`, or any task with
    `rebuild_when_stale = False`). An output written before manifests existed is complete, as before.
    A task hands `self.manifest()` to its target's write (`temporary_path(manifest=...)`).
    """

    # The task's own class and every followed function it names are the recipe; list here what it reaches
    # only indirectly (a function passed by name), as functions or "module.name" strings.
    recipe_functions: tuple = ()
    # Raise by one to make every output of this task stale by hand (a change the recipe cannot see).
    recipe_version: int = 0
    # Every setting the task reads that changes its output, as "section.key".
    config_keys: tuple[str, ...] = ()
    # The task's `date` is a scoring night: once Publish(date) is done, its stale output stays (shown, not redone).
    frozen_by_publish: bool = False
    # False: done is done (Publish); staleness is only reported.
    rebuild_when_stale: bool = True

    def complete(self) -> bool:
        if not super().complete():
            return False
        return not self.rebuild_when_stale or not Provenance().must_rebuild(self)

    def manifest(self, rows: int | None = None) -> dict:
        return Provenance().manifest(self, rows)


# --- a night's stale targets --------------------------------------------------------------------------------------

class Stale(NamedTuple):
    task: luigi.Task
    reasons: list[str]
    stays: bool  # not rebuilt by the next run (the night is published, or it is Publish's own marker)


def night_tasks(date: dt.date) -> list[luigi.Task]:
    """Every task of DailyScoring(date)'s graph, through requires() only."""
    from tasks import graph

    return list(graph.Graph(graph.night(date)).tasks.values())


class NightProvenance(NamedTuple):
    date: dt.date
    stale: list[Stale]
    unknown: list[luigi.Task]  # outputs written before manifests existed
    published: bool


def night_provenance(date: dt.date, tasks: Iterable[luigi.Task] | None = None,
                     provenance: Provenance | None = None) -> NightProvenance:
    """The stale targets of a night (with reasons) and those without a manifest. Reads manifests and listings."""
    provenance = provenance or Provenance()
    stale, unknown = [], []
    for task in tasks if tasks is not None else night_tasks(date):
        if not isinstance(task, Recorded) or not task.output().exists():
            continue
        if provenance.recorded(task) is None:
            unknown.append(task)
        elif provenance.is_stale(task):
            stale.append(Stale(task, provenance.reasons(task), provenance.stays(task)))
    return NightProvenance(date, stale, unknown, provenance.published(date))


def stale_targets(date: dt.date) -> list[tuple[luigi.Task, list[str]]]:
    """(task, reasons) of every stale target of DailyScoring(date)'s graph."""
    return [(entry.task, entry.reasons) for entry in night_provenance(date).stale]


def adopt(tasks: Iterable[luigi.Task], provenance: Provenance | None = None) -> list[luigi.Task]:
    """Write the current recipe's manifest into every existing output that has none; returns those adopted."""
    provenance = provenance or Provenance()
    adopted = []
    for task in tasks:
        if not isinstance(task, Recorded) or not task.output().exists() or provenance.recorded(task) is not None:
            continue
        # Not from a run(): its inputs may be stale, and it records what they will be once rebuilt.
        task.output().write_manifest({**provenance.manifest(task, inputs_complete=False), "adopted": True})
        adopted.append(task)
    return adopted

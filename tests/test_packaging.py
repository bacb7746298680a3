"""`pip install .` brings what `invoke serve` and the production tasks need, not the lab.

A production host installs the package's base dependencies (pyproject's `[project]
dependencies`); the notebooks' stack and the test tooling are the `analytics` and `dev`
extras, which `requirements.txt` adds with its pins. These tests keep it so: the base set
(resolved from the installed metadata, and by pip itself against the index, slow) holds
none of the lab, and every import the serve path and the production tasks contain runs
with the base set alone.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from cloutsy.config import PROJECT_ROOT

PROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
# Never on a production host: the notebooks' stack and the test and bench tooling.
LAB_ONLY = {
    "pandas", "matplotlib", "jupyterlab", "ipykernel", "nbclient", "nbconvert",
    "pytest", "webtest", "hypothesis", "schemathesis", "locust", "mypy", "ruff", "gunicorn",
}  # fmt: skip
# What serving the API cannot do without.
SERVE_STACK = {"granian", "bottle", "peewee", "psycopg2-binary", "pydantic", "pgserver", "invoke"}
# The tasks that need the extras; every other task is a production one.
LAB_TASKS = {"test", "bench", "notebooks", "loadtest"}

# Run with `python -S` (no site-packages): only the base set's files and the project exist.
CHILD = """
import importlib.util, json, sys
site, root, imports = json.loads(sys.argv[1])
sys.path[:0] = [site, root]
assert importlib.util.find_spec("pandas") is None, "the lab is importable"
for statement, where in imports.items():
    try:
        exec(statement, {})
    except ImportError as exc:
        sys.exit(f"{where}: {statement}: {exc}")
print("imported", len(sys.modules), "modules")
"""


def _wanted(requirement: Requirement, extras: set[str]) -> bool:
    """Whether pip would install `requirement` when its owner is asked for with `extras`."""
    marker = requirement.marker
    return marker is None or any(marker.evaluate({"extra": e}) for e in extras | {""})


def base_distributions() -> dict[str, metadata.Distribution]:
    """The installed distributions `pip install .` brings: the base dependencies' closure."""
    found: dict[str, metadata.Distribution] = {}
    todo = [Requirement(r) for r in PROJECT["dependencies"]]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in found:
            continue
        found[name] = dist = metadata.distribution(name)
        extras = set(requirement.extras)
        todo += [r for r in map(Requirement, dist.requires or []) if _wanted(r, extras)]
    return found


def production_imports() -> dict[str, str]:
    """Every import statement on the serve path and in the production tasks, lazy ones too.

    Starts from the worker's entry module and tasks.py (but the bodies of the lab's tasks),
    and follows every `cloutsy` module they import, function bodies included: a module the
    service loads may not import the lab's libraries even where it does so lazily.
    Returns each statement with the first file that holds it.
    """
    import tasks

    lab_bodies = {tasks.ns[name].body.__name__ for name in LAB_TASKS}
    imports = {"import cloutsy.api.wsgi": "the worker's app", "import tasks": "invoke"}
    files = [PROJECT_ROOT / "tasks.py", PROJECT_ROOT / "cloutsy" / "api" / "wsgi.py"]
    seen = set(files)
    while files:
        path = files.pop()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = {
            id(inner)
            for node in ast.walk(tree)
            if (isinstance(node, ast.FunctionDef) and node.name in lab_bodies)
            or (isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test))
            for inner in ast.walk(node)
        }
        for node in ast.walk(tree):
            if id(node) in skipped or not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                continue
            imports.setdefault(ast.unparse(node), str(path.relative_to(PROJECT_ROOT)))
            names = [a.name for a in node.names]
            if isinstance(node, ast.ImportFrom):
                names = [node.module or "", *(f"{node.module}.{n}" for n in names)]
            for found in {path for name in names for path in _package_files(name)} - seen:
                seen.add(found)
                files.append(found)
    return imports


def _package_files(name: str) -> list[Path]:
    """The source files importing `name` runs when it is (in) this package, parents included."""
    parts = name.split(".")
    if parts[0] != "cloutsy":
        return []
    paths = [PROJECT_ROOT.joinpath(*parts[:depth]) for depth in range(1, len(parts) + 1)]
    candidates = [c for p in paths for c in (p / "__init__.py", p.with_suffix(".py"))]
    return [c for c in candidates if c.is_file()]


def base_only_site(root: Path, dists: dict[str, metadata.Distribution]) -> Path:
    """A directory holding only `dists`' files (links into this environment's site-packages)."""
    site = root / "site-packages"
    site.mkdir()
    for name, dist in dists.items():
        assert dist.files is not None, f"{name} lists no files (no RECORD)"
        for top in {f.parts[0] for f in dist.files}:
            if top in ("..", "__pycache__") or top.endswith(".pth") or (site / top).exists():
                continue
            (site / top).symlink_to(dist.locate_file(top))
    return site


def test_the_base_dependencies_bring_the_serve_stack_and_none_of_the_lab():
    names = set(base_distributions())
    assert names >= SERVE_STACK, f"missing from the base set: {sorted(SERVE_STACK - names)}"
    assert not names & LAB_ONLY, f"the base set pulls in the lab: {sorted(names & LAB_ONLY)}"


def test_serve_and_the_production_tasks_import_with_the_base_dependencies_alone(tmp_path):
    site = base_only_site(tmp_path, base_distributions())
    imports = production_imports()
    assert "from granian.cli import entrypoint" in imports  # lazy imports are followed
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        # A configured server, so the worker's module builds its pool without starting the
        # embedded one; nothing connects at import.
        "DATABASE_URL": "postgresql://cloutsy@127.0.0.1:9/cloutsy_packaging",
        "CLOUTSY_DATA_DIR": str(tmp_path / "data"),
    }
    run = subprocess.run(
        [sys.executable, "-S", "-c", CHILD, json.dumps([str(site), str(PROJECT_ROOT), imports])],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "imported" in run.stdout


def _declared() -> dict[str, Requirement]:
    """Every dependency pyproject declares, base and extras (not the package itself)."""
    groups = [PROJECT["dependencies"], *PROJECT["optional-dependencies"].values()]
    requirements = [Requirement(r) for group in groups for r in group]
    return {canonicalize_name(r.name): r for r in requirements if r.name != PROJECT["name"]}


def test_requirements_txt_pins_exactly_what_pyproject_declares_within_its_ranges():
    lines = (PROJECT_ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    entries = [line.split("#")[0].strip() for line in lines]
    assert "-e .[analytics,dev]" in entries  # the package itself, with both extras
    pins = {
        canonicalize_name(r.name): r
        for r in map(Requirement, (e for e in entries if e and not e.startswith("-")))
    }
    declared = _declared()
    assert set(pins) == set(declared), {
        "pinned, not declared": sorted(set(pins) - set(declared)),
        "declared, not pinned": sorted(set(declared) - set(pins)),
    }
    for name, pin in pins.items():
        (spec,) = pin.specifier
        assert spec.operator == "==", f"{name}: requirements.txt pins with =="
        assert declared[name].specifier.contains(spec.version), (
            f"{name}=={spec.version} is outside pyproject's {declared[name].specifier}"
        )


@pytest.mark.slow
def test_pip_resolves_the_package_without_the_lab(tmp_path):
    """What `pip install .` would install on an empty host, resolved by pip from the index."""
    project = tmp_path / "project"
    (project / "cloutsy").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "pyproject.toml", project)
    (project / "cloutsy" / "__init__.py").touch()  # metadata needs the package, not its code
    report = tmp_path / "report.json"
    run = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
        + ["--report", str(report), str(project)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    installed = json.loads(report.read_text())["install"]
    names = {canonicalize_name(item["metadata"]["name"]) for item in installed}
    assert names >= SERVE_STACK, f"pip leaves out: {sorted(SERVE_STACK - names)}"
    assert not names & LAB_ONLY, f"pip would install the lab: {sorted(names & LAB_ONLY)}"

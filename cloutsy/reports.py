"""Run the notebooks headless and keep an HTML report of each (`invoke notebooks`).

Each notebook runs top to bottom in a fresh `python3` kernel (ipykernel from this
environment) whose working directory is the notebook's folder and whose
PYTHONPATH starts with the project root, so `import cloutsy` works and the
kernel reads the same database settings (DATABASE_URL, POSTGRES_*) as the caller.
The notebooks on disk are never rewritten: outputs live only in the reports.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import NoSuchKernel
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbconvert import HTMLExporter

from cloutsy.config import PROJECT_ROOT
from cloutsy.errors import NotebookFailed

KERNEL = "python3"
CELL_TIMEOUT_S = 300
ANSI = re.compile(r"\x1b\[[0-9;]*m")


_QUIET = logging.getLogger(__name__ + ".nbclient")
_QUIET.setLevel(logging.WARNING)


def run_notebooks(
    notebook_dir: Path,
    report_dir: Path,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[Path]:
    """Execute every `*.ipynb` in `notebook_dir` (by name) and write `report_dir/<name>.html`."""
    notebooks = sorted(Path(notebook_dir).glob("*.ipynb"))
    if not notebooks:
        raise NotebookFailed(f"no notebooks in {notebook_dir}")
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for done, path in enumerate(notebooks):
        if progress:
            progress(path.name, done, len(notebooks))
        written.append(_write_report(execute(path), report_dir / f"{path.stem}.html"))
    if progress:
        progress("done", len(notebooks), len(notebooks))
    return written


def execute(path: Path, timeout: int = CELL_TIMEOUT_S) -> nbformat.NotebookNode:
    """Run the notebook at `path` in a fresh kernel and return it with its outputs."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name=KERNEL,
        timeout=timeout,
        resources={"metadata": {"path": str(path.parent)}},
        # Quiet the kernel's own start-up warnings (plain-TCP transport on localhost).
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
        log=_QUIET,  # failures are reported by NotebookFailed, not by nbclient's INFO lines
    )
    try:
        client.execute(env=_kernel_env())
    except CellExecutionError as exc:
        cell = _failed_cell(notebook)
        # An error value's first line is its message (a database error's next lines
        # point into the SQL); a traceback's last line is the error.
        reason = (
            f"{exc.ename}: {_one_line(exc.evalue, first=True)}"
            if exc.ename
            else _one_line(str(exc))
        )
        raise NotebookFailed(f"{path.name}: cell {cell} raised {reason}") from None
    except CellTimeoutError:
        raise NotebookFailed(f"{path.name}: a cell ran longer than {timeout} s") from None
    except DeadKernelError as exc:
        raise NotebookFailed(f"{path.name}: the kernel died: {_one_line(str(exc))}") from None
    except NoSuchKernel:
        raise NotebookFailed(
            f"{path.name}: no {KERNEL!r} kernel (install ipykernel in this environment)"
        ) from None
    return notebook


def _kernel_env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(PROJECT_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    # Charts must come back as PNG outputs, whatever backend the caller's shell picks.
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    return env


def _failed_cell(notebook: nbformat.NotebookNode) -> int:
    """The 1-based number of the first code cell with an error output (0 if none)."""
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    for number, cell in enumerate(code_cells, start=1):
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return number
    return 0


def _one_line(text: str, first: bool = False) -> str:
    lines = [line.strip() for line in ANSI.sub("", text).splitlines() if line.strip()]
    if not lines:
        return "unknown error"
    return lines[0] if first else lines[-1]


def _write_report(notebook: nbformat.NotebookNode, target: Path) -> Path:
    body, _ = HTMLExporter().from_notebook_node(notebook)
    target.write_text(body, encoding="utf-8")
    return target

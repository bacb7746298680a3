"""The notebooks: stored without outputs, and each runs headless to a report with charts."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from cloutsy import demo, reports
from cloutsy.config import PROJECT_ROOT

NOTEBOOKS = PROJECT_ROOT / "notebooks"
EXPECTED = {"growth_metrics.ipynb", "niche_distribution.ipynb", "query_timings.ipynb"}
# A chart in nbconvert's HTML: an image output area holding an inline PNG.
PNG = re.compile(r'<div class="jp-RenderedImage[^>]*>\s*<img[^>]+src="data:image/png;base64,')


def test_the_three_notebooks_are_committed_without_outputs():
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert {p.name for p in paths} == EXPECTED
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert code, path.name
        for cell in code:
            assert cell.outputs == [], f"{path.name} carries outputs"
            assert cell.execution_count is None, f"{path.name} carries execution counts"


def test_notebooks_run_against_demo_data_and_draw_charts(committed, tmp_path):
    demo.seed_demo(2000, 200, 60)  # committed: the kernels read it from other processes
    steps = []
    written = reports.run_notebooks(
        NOTEBOOKS, tmp_path, progress=lambda name, done, total: steps.append((name, done))
    )
    assert [p.name for p in written] == sorted(n.replace(".ipynb", ".html") for n in EXPECTED)
    for path in written:
        html = path.read_text(encoding="utf-8")
        assert len(PNG.findall(html)) >= 1, f"{path.name} has no chart"
        assert "Traceback" not in html
    assert steps[-1] == ("done", 3)


def test_a_failing_notebook_is_named_with_its_cell_and_error(tmp_path):
    broken = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# Broken"),
            nbformat.v4.new_code_cell("x = 1"),
            nbformat.v4.new_code_cell("x / 0"),
        ]
    )
    nbformat.write(broken, tmp_path / "broken.ipynb")
    with pytest.raises(reports.NotebookFailed) as failure:
        reports.run_notebooks(tmp_path, tmp_path / "reports")
    message = str(failure.value)
    assert message == "broken.ipynb: cell 2 raised ZeroDivisionError: division by zero"
    assert not (tmp_path / "reports" / "broken.html").exists()


def test_an_empty_folder_is_an_error(tmp_path: Path):
    with pytest.raises(reports.NotebookFailed, match="no notebooks"):
        reports.run_notebooks(tmp_path, tmp_path / "reports")


def test_notebooks_run_on_a_database_with_almost_no_accounts(committed, tmp_path):
    """An analyst opening the notebooks on a new database gets charts, not a traceback."""
    from cloutsy.models import Influencer

    with committed.connection_context():
        Influencer.create(
            name="Only", username="only.one", email="only@example.com", phone="+919812300000"
        )
    written = reports.run_notebooks(NOTEBOOKS, tmp_path)
    assert len(written) == 3

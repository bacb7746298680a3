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
# A chart in nbconvert's HTML: an inline PNG with its alt text (`cloutsy.charts.show`).
# (nbconvert re-serialises the tag, so either attribute may come first.)
PNG = re.compile(
    r'<img (?:alt="[^"]{20,}" src="data:image/png;base64,[A-Za-z0-9+/=]+"'
    r'|src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="[^"]{20,}")/>'
)


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


# Figures each notebook draws (a figure may hold several axes).
FIGURES = {"growth_metrics": 6, "niche_distribution": 5, "query_timings": 4}


def test_notebooks_run_against_demo_data_and_draw_charts(committed, tmp_path, monkeypatch):
    demo.seed_demo(2000, 200, 60)  # committed: the kernels read it from other processes
    executed = {}
    run = reports.execute
    monkeypatch.setattr(
        reports, "execute", lambda path, **kw: executed.setdefault(path.stem, run(path, **kw))
    )
    steps = []
    written = reports.run_notebooks(
        NOTEBOOKS, tmp_path, progress=lambda name, done, total: steps.append((name, done))
    )
    assert [p.name for p in written] == sorted(n.replace(".ipynb", ".html") for n in EXPECTED)
    for path in written:
        html = path.read_text(encoding="utf-8")
        assert len(PNG.findall(html)) == FIGURES[path.stem], f"{path.name}: charts or alt text"
        assert "No description has been provided for this image" not in html  # nbconvert's
        assert "Traceback" not in html
    assert steps[-1] == ("done", 3)
    for name, notebook in executed.items():
        figures = [
            output
            for cell in notebook.cells
            for output in cell.get("outputs", [])
            if "image/png" in output.get("data", {})
        ]
        assert len(figures) == FIGURES[name], name
        for number, output in enumerate(figures, start=1):
            where = f"{name} figure {number}"
            assert len(output.metadata["image/png"]["alt"]) > 40, where
            axes = output.metadata["cloutsy_figure"]  # what charts.show checked, per axes
            assert axes, where
            for ax in axes:
                assert ax["title"] and ax["xlabel"] and ax["ylabel"], (where, ax)
                if ax["series"] > 1:
                    assert len(ax["legend"]) >= 2, (where, ax)
                assert ax["problems"] == [], (where, ax)


def test_the_figure_check_names_what_an_analyst_would_trip_over():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cloutsy import charts

    bare, ax = plt.subplots()
    ax.bar([1, 2], [3, 4], color=["tab:red", "tab:blue"])
    assert charts.problems(bare) == [
        "untitled: no title",
        "untitled: no xlabel",
        "untitled: no ylabel",
        "untitled: 2 series without a legend",
    ]
    raw, ax = plt.subplots()
    ax.bar([0, 1, 2], [10, 10, 10], label="p50_ms")
    ax.legend(loc="lower center")  # right on the bars
    ax.set(title="t", xlabel="x", ylabel="y")
    assert charts.problems(raw) == [
        "t: raw column names in labels: p50_ms",
        "t: the legend covers data",
    ]
    crowded, ax = plt.subplots()
    ax.scatter([1, 1.01], [1, 1.01])
    ax.annotate("Sports", (1, 1))
    ax.annotate("Sustainability", (1.01, 1.01))
    ax.set(title="t", xlabel="x", ylabel="y", xlim=(0, 10), ylim=(0, 10))
    assert charts.problems(crowded) == ["t: labels overlap: 'Sports' and 'Sustainability'"]
    placed, ax = plt.subplots()
    ax.scatter([1, 1.01, 5], [1, 1.01, 5])
    ax.set(title="t", xlabel="x", ylabel="y", xlim=(0, 10), ylim=(0, 10))
    left_out = charts.label_points(ax, [1, 1.01, 5], [1, 1.01, 5], ["Sports", "Pets", "Food"])
    assert charts.problems(placed) == []
    assert len(ax.texts) + len(left_out) == 3 and "Food" not in left_out
    for fig in (bare, raw, crowded, placed):
        plt.close(fig)


def test_a_partial_first_period_is_flagged():
    import pandas as pd

    from cloutsy import charts

    frame = pd.DataFrame(
        {
            "period": pd.to_datetime(["2026-01-05", "2026-01-12", "2026-01-19"], utc=True),
            "complete": [True, True, False],
        }
    )
    mid_week = pd.Timestamp("2026-01-07", tz="UTC")
    assert charts.flag_partial(frame, "week", mid_week).tolist() == [True, False, True]
    monday = pd.Timestamp("2026-01-05", tz="UTC")
    assert charts.flag_partial(frame, "week", monday).tolist() == [False, False, True]


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

"""How the notebooks draw: every figure checked before it is shown, and shown with alt text.

`show(fig, alt)` is the one way a notebook displays a chart. It refuses (ValueError) a
figure an analyst could misread at a glance: an axes without a title or axis labels,
several series without a legend, a legend lying on the data, labels on top of each
other, a raw column name (`p50_ms`) where a human label belongs. The checks
(`problems()`) read the drawn figure itself, so they hold whatever the notebook did.
The PNG goes out with alt text (an `<img alt=…>` for HTML reports and JupyterLab) and
with a summary of what was checked in the output's metadata (`cloutsy_figure`), which
the tests read back from every rendered notebook.

Presentation only: data comes from `cloutsy.analytics`; nothing here touches the database.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import Bbox

RAW_NAME = re.compile(r"\b[a-z0-9]+_[a-z0-9_]+\b")
# Offsets (points) tried in turn for a point label, before it is left out.
LABEL_OFFSETS = ((4, 4), (4, -10), (-4, 4), (-4, -10), (6, 0), (-6, 0), (0, 8), (0, -12))


# --- what a figure shows ---------------------------------------------------------------------


def _data_axes(fig: Figure) -> list[Axes]:
    """The axes that plot data (colour bars and switched-off axes are not)."""
    return [ax for ax in fig.axes if ax.axison and not hasattr(ax, "_colorbar")]


def _is_reference(line: Line2D, ax: Axes) -> bool:
    """axhline/axvline (drawn in axes coordinates on one side) mark a level, not a series."""
    return line.get_transform() != ax.transData


def _series_colours(ax: Axes) -> set[tuple[float, ...]]:
    colours: set[tuple[float, ...]] = set()
    for container in ax.containers:
        for patch in getattr(container, "patches", []):
            colours.add(tuple(round(c, 3) for c in to_rgb(patch.get_facecolor())))
    for line in ax.get_lines():
        if not _is_reference(line, ax):
            colours.add(tuple(round(c, 3) for c in to_rgb(line.get_color())))
    for coll in ax.collections:
        faces = np.asarray(coll.get_facecolor())
        for face in faces[:50]:
            colours.add(tuple(round(c, 3) for c in face[:3]))
    return colours


def _legends(fig: Figure, ax: Axes) -> list[Any]:
    own = ax.get_legend()
    return ([own] if own is not None else []) + list(fig.legends)


def _points(ax: Axes) -> list[tuple[float, float]]:
    """Display coordinates of every data point of `ax` (line vertices, scatter points)."""
    out: list[tuple[float, float]] = []
    for line in ax.get_lines():
        xy = np.asarray(line.get_xydata())
        if not _is_reference(line, ax) and len(xy):
            out += [tuple(p) for p in line.get_transform().transform(xy)]
    for coll in ax.collections:
        offsets = np.asarray(coll.get_offsets())
        if len(offsets):
            out += [tuple(p) for p in coll.get_offset_transform().transform(offsets)]
    return out


def _boxes(ax: Axes) -> list[Bbox]:
    """Display boxes of every bar with an area, and every text label, on `ax`."""
    boxes = []
    for container in ax.containers:
        for patch in getattr(container, "patches", []):
            box = patch.get_window_extent()
            if box.width > 0.5 and box.height > 0.5:
                boxes.append(box)
    return boxes


def _texts(ax: Axes, renderer: Any) -> list[tuple[str, Bbox]]:
    return [
        (t.get_text(), t.get_window_extent(renderer))
        for t in ax.texts
        if t.get_visible() and t.get_text().strip()
    ]


def _inside(box: Bbox, x: float, y: float) -> bool:
    return bool(box.x0 < x < box.x1 and box.y0 < y < box.y1)


def describe(fig: Figure) -> list[dict[str, Any]]:
    """Per data axes: title, axis labels, series count, legend entries, problems found."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    suptitle = fig.get_suptitle() if hasattr(fig, "get_suptitle") else ""
    out = []
    for ax in _data_axes(fig):
        legends = _legends(fig, ax)
        entries = [t.get_text() for lg in legends for t in lg.get_texts()]
        info: dict[str, Any] = {
            "title": ax.get_title() or suptitle,
            "xlabel": ax.get_xlabel(),
            "ylabel": ax.get_ylabel(),
            "series": len(_series_colours(ax)),
            "legend": entries,
            "problems": [],
        }
        problems: list[str] = info["problems"]
        for what in ("title", "xlabel", "ylabel"):
            if not str(info[what]).strip():
                problems.append(f"no {what}")
        if info["series"] > 1 and not entries:
            problems.append(f"{info['series']} series without a legend")
        shown = [info["title"], info["xlabel"], info["ylabel"], *entries]
        shown += [lg.get_title().get_text() for lg in legends]
        raw = sorted({m for text in shown for m in RAW_NAME.findall(str(text))})
        if raw:
            problems.append(f"raw column names in labels: {', '.join(raw)}")
        texts = _texts(ax, renderer)
        for lg in legends:
            box = lg.get_window_extent(renderer)
            hidden = [p for p in _points(ax) if _inside(box, *p)]
            hidden_bars = [b for b in _boxes(ax) if b.overlaps(box)]
            hidden_texts = [t for t, b in texts if b.overlaps(box)]
            if hidden or hidden_bars or hidden_texts:
                problems.append("the legend covers data")
        for i, (text, box) in enumerate(texts):
            for other, other_box in texts[i + 1 :]:
                if box.overlaps(other_box):
                    problems.append(f"labels overlap: {text!r} and {other!r}")
        out.append(info)
    return out


def problems(fig: Figure) -> list[str]:
    """Everything `describe()` found wrong, one line each, prefixed by the axes' title."""
    return [f"{a['title'] or 'untitled'}: {p}" for a in describe(fig) for p in a["problems"]]


# --- drawing helpers -------------------------------------------------------------------------


def legend_below(fig: Figure, axes: Axes | Sequence[Axes], **kwargs: Any) -> None:
    """One legend for the figure, outside and under the plots (never over the data).

    Needs a figure made with `layout="constrained"`; entries are gathered from `axes`
    without repeats.
    """
    handles: list[Artist] = []
    labels: list[str] = []
    for ax in [axes] if isinstance(axes, Axes) else axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    kwargs.setdefault("ncols", min(len(labels), 4) or 1)
    fig.legend(handles, labels, loc="outside lower center", frameon=False, **kwargs)


def label_points(
    ax: Axes, xs: Iterable[float], ys: Iterable[float], labels: Iterable[str], **text: Any
) -> list[str]:
    """Label scatter points without overlaps; return the labels left out for lack of room.

    Each label tries a few offsets around its point and takes the first that touches
    no earlier label; a label that fits nowhere is left out (say so in the caption).
    """
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    placed: list[Bbox] = []
    left_out: list[str] = []
    points = list(zip(xs, ys, labels, strict=True))
    for x, y, label in points:
        for dx, dy in LABEL_OFFSETS:
            note = ax.annotate(
                label, (x, y), xytext=(dx, dy), textcoords="offset points",
                ha="left" if dx >= 0 else "right", **text,
            )  # fmt: skip
            box = note.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed) and ax.bbox.contains(
                box.x0, box.y0
            ):
                placed.append(box)
                break
            note.remove()
        else:
            left_out.append(label)
    return left_out


def date_axis(ax: Axes) -> None:
    """Dates on the x axis as short, unrotated labels (a year shown once, where it changes)."""
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def flag_partial(frame: pd.DataFrame, period: str, first_day: Any) -> pd.Series:
    """True for the periods a chart must mark as partial: the one still under way, and the
    first one when the data starts after it began (e.g. sign-ups opening mid-week)."""
    partial = ~frame["complete"].astype(bool)
    if len(frame) and first_day is not None:
        start = pd.Timestamp(first_day)
        partial.iloc[0] = bool(partial.iloc[0] or frame["period"].iloc[0] < start)
    return partial


# --- showing ---------------------------------------------------------------------------------


def alt_text(fig: Figure, alt: str) -> str:
    """`alt`, followed by what the figure's axes show (title, axes, series)."""
    parts = [alt.strip().rstrip(".") + "."]
    for a in describe(fig):
        legend = f"; series: {', '.join(a['legend'])}" if a["legend"] else ""
        parts.append(f"{a['title']}: {a['ylabel']} against {a['xlabel']}{legend}.")
    return " ".join(parts)


def show(fig: Figure, alt: str) -> None:
    """Check `fig`, then display it as a PNG with alt text (ValueError naming each problem)."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    found = problems(fig)
    if found:
        plt.close(fig)
        raise ValueError("chart not shown: " + "; ".join(found))
    summary = describe(fig)
    description = alt_text(fig, alt)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)  # shown once, by us, not again by the inline backend
    png = base64.b64encode(buffer.getvalue()).decode()
    bundle = {
        "image/png": png,
        "text/html": f'<img src="data:image/png;base64,{png}" alt="{html.escape(description)}"/>',
        "text/plain": description,
    }
    metadata = {"image/png": {"alt": description}, "cloutsy_figure": summary}
    display(bundle, raw=True, metadata=metadata)

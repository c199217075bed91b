"""Small plotting helpers shared by the chapters: figures sized for the page, saved as PNG and PDF.

A figure is read in the book's text column, about ``TEXT_COLUMN_PX`` CSS pixels wide at a
1280 px window, and a PNG wider than that is scaled down to it. Text of ``s`` points in a figure
``w`` inches wide therefore shows at ``s * TEXT_COLUMN_PX / (72 w)`` CSS pixels: a 4-panel row
16 inches wide turns 10 pt tick labels into 6 px ones. :func:`panel_grid` lays panels out at
most ``MAX_COLUMNS`` to a row at a width that keeps the text at ``MIN_TEXT_PX`` or more, and
:func:`show_figure` saves a figure, records the smallest text it holds (in image pixels, in the
PNG's ``min_text_px`` text chunk, read back by ``tests/test_html.py``) and displays it.
"""
from __future__ import annotations

import math
from pathlib import Path

TEXT_COLUMN_PX = 672  # CSS px: the width of the book theme's text column at a 1280 px window
MIN_TEXT_PX = 8.0     # CSS px: the smallest tick, legend or label text a reader can read
MAX_COLUMNS = 3       # panels a row in the text column
PANEL_INCHES = (3.2, 2.6)  # one panel (width, height) in inches, labels included
DPI = 150             # of the saved PNG (also the one shown in the book)
METADATA_KEY = "min_text_px"


def panel_grid(n_panels: int, *, ncols: int | None = None,
               panel: tuple[float, float] = PANEL_INCHES, **subplots_kw):
    """A figure with ``n_panels`` axes, at most ``MAX_COLUMNS`` a row, sized for the text column.

    Returns ``(fig, axes)`` with ``axes`` a flat list of exactly ``n_panels`` axes (the unused
    cells of the last row are removed). ``ncols`` defaults to ``min(n_panels, MAX_COLUMNS)``
    (4 panels as 2 x 2);
    ``panel`` is the size of one panel in inches; other keywords go to ``plt.subplots``
    (``sharex``, ``sharey``, ``subplot_kw``...).
    """
    import matplotlib.pyplot as plt

    if not isinstance(n_panels, int) or n_panels < 1:
        raise ValueError(f"n_panels must be a positive integer, got {n_panels!r}")
    if ncols is None:
        ncols = 2 if n_panels == 4 else min(n_panels, MAX_COLUMNS)
    if not isinstance(ncols, int) or not 1 <= ncols <= MAX_COLUMNS:
        raise ValueError(f"ncols must be an integer in [1, {MAX_COLUMNS}] (panels a row in the "
                         f"text column), got {ncols!r}")
    nrows = math.ceil(n_panels / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows),
                             squeeze=False, layout="constrained", **subplots_kw)
    flat = list(axes.ravel())
    for ax in flat[n_panels:]:
        ax.remove()
    return fig, flat[:n_panels]


def min_text_points(fig) -> float:
    """The size in points of the smallest text drawn in ``fig`` (ticks, legends, labels)."""
    from matplotlib.text import Text

    fig.canvas.draw()
    sizes = [t.get_fontsize() for t in fig.findobj(Text)
             if t.get_visible() and t.get_text().strip() and t.get_figure() is not None]
    return min(sizes) if sizes else math.inf


def savefig(fig, name: str, fig_dir: str | Path = "figures") -> list[Path]:
    """Save ``fig`` as ``fig_dir/name.png`` and ``fig_dir/name.pdf``; returns the two paths.

    The PNG carries the size of the smallest text in image pixels as its ``min_text_px`` text
    chunk, so that a test of the rendered book can tell how large it is on the page.
    """
    fig_dir = Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    paths = [fig_dir / f"{name}.{ext}" for ext in ("png", "pdf")]
    text_px = min_text_points(fig) * DPI / 72
    fig.savefig(paths[0], dpi=DPI, bbox_inches="tight",
                metadata={METADATA_KEY: f"{text_px:.2f}"})
    fig.savefig(paths[1], dpi=DPI, bbox_inches="tight")
    return paths


def figure_image(fig, name: str, fig_dir: str | Path = "figures"):
    """Save ``fig`` (see :func:`savefig`), close it, and return the saved PNG as an IPython
    ``Image``: what a chapter displays or glues, so that the page shows exactly the saved file
    with its text-size record (the inline backend would draw its own copy without one)."""
    import matplotlib.pyplot as plt
    from IPython.display import Image

    png, _ = savefig(fig, name, fig_dir)
    plt.close(fig)
    return Image(data=png.read_bytes(), format="png")


def show_figure(fig, name: str, fig_dir: str | Path = "figures") -> None:
    """Save ``fig``, show the saved PNG in the notebook and close ``fig`` (:func:`figure_image`)."""
    from IPython.display import display

    display(figure_image(fig, name, fig_dir))


def csv_table(header: list[str], rows: list[list], name: str, folder: str | Path = "figures",
              fmt: str = "{:.3g}"):
    """Write ``folder/name.csv`` (full precision) and return the same rows as
    :func:`markdown_table`: a long table a chapter folds and offers for download."""
    import csv

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.csv.tmp"
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header, *rows])
    tmp.replace(folder / f"{name}.csv")
    return markdown_table(header, rows, fmt)


def markdown_table(header: list[str], rows: list[list], fmt: str = "{:.3g}"):
    """A Markdown table for a chapter's output; floats are formatted with ``fmt``."""
    from IPython.display import Markdown

    def cell(x):  # a literal "|" would end the cell
        return (fmt.format(x) if isinstance(x, float) else str(x)).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(x) for x in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows]
    return Markdown("\n".join(lines))

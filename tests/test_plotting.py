"""Chapter helpers: figures saved in both formats, tables that survive a "|" in a cell."""
import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bea_lib.figures.plotting import markdown_table, savefig


def test_savefig_writes_png_and_pdf(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    paths = savefig(fig, "line", tmp_path / "figs")
    plt.close(fig)
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert all(p.stat().st_size > 0 for p in paths)
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"


def test_markdown_table_escapes_pipes_and_formats_floats():
    md = markdown_table(["max |x|", "n"], [["a|b", 0.000123456], ["c", 3]]).data.splitlines()
    assert md[0] == r"| max \|x\| | n |"
    assert md[2] == r"| a\|b | 0.000123 |"
    assert md[3] == "| c | 3 |"


def test_panel_grid_puts_at_most_three_panels_a_row():
    from bea_lib.figures.plotting import MAX_COLUMNS, panel_grid

    for n, shape in ((1, (1, 1)), (2, (1, 2)), (3, (1, 3)), (4, (2, 2)), (6, (2, 3)),
                     (10, (4, 3))):
        fig, axes = panel_grid(n)
        grid = axes[0].get_subplotspec().get_gridspec()
        assert len(axes) == n and (grid.nrows, grid.ncols) == shape, (n, grid.get_geometry())
        assert len(fig.axes) == n  # the unused cells of the last row are removed
        plt.close(fig)
    fig, axes = panel_grid(10, ncols=2)
    assert axes[0].get_subplotspec().get_gridspec().get_geometry() == (5, 2)
    plt.close(fig)
    for bad in (0, 2.5):
        with pytest.raises(ValueError, match="n_panels"):
            panel_grid(bad)
    with pytest.raises(ValueError, match="ncols"):
        panel_grid(8, ncols=MAX_COLUMNS + 1)


def _four_panels(fig, axes):
    for ax in axes:
        ax.plot([1, 10, 100], [3, 1, 2], label="a curve")
        ax.set_xlabel("step size h")
        ax.legend(fontsize=8)
    return fig


def text_px_in_column(fig) -> float:
    """The smallest text of ``fig`` in CSS px when its PNG is shown in the text column: a PNG
    narrower than the column at its natural size (1 image px = 1 CSS px at the book's DPI), a
    wider one scaled to fit; bbox_inches="tight" pads 0.1 in on each side."""
    from bea_lib.figures.plotting import DPI, TEXT_COLUMN_PX, min_text_points

    fig.canvas.draw()
    width_px = (fig.get_tightbbox(fig.canvas.get_renderer()).width + 0.2) * DPI
    return min_text_points(fig) * DPI / 72 * min(1.0, TEXT_COLUMN_PX / width_px)


def test_panel_grid_figures_keep_text_readable_in_the_column_and_a_wide_row_does_not():
    """Ticks and legends of a panel_grid figure are >= 8 CSS px in the 672 px text column; the
    same four panels in one 16-inch row (the layout it replaces) come out near 5 px."""
    from bea_lib.figures.plotting import MIN_TEXT_PX, panel_grid

    fig = _four_panels(*panel_grid(4))
    assert text_px_in_column(fig) >= MIN_TEXT_PX
    plt.close(fig)
    wide, axes = plt.subplots(1, 4, figsize=(16, 3.2))
    wide = _four_panels(wide, axes)
    assert text_px_in_column(wide) < 6
    plt.close(wide)


def test_savefig_records_the_smallest_text_in_image_pixels(tmp_path):
    from PIL import Image

    from bea_lib.figures.plotting import DPI, METADATA_KEY, min_text_points

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], label="x")
    ax.legend(fontsize=7)  # the smallest text: 7 pt
    png, _ = savefig(fig, "small", tmp_path)
    assert min_text_points(fig) == 7
    plt.close(fig)
    with Image.open(png) as im:
        assert float(im.info[METADATA_KEY]) == pytest.approx(7 * DPI / 72, abs=0.01)

"""Chapter helpers: figures saved in both formats, tables that survive a "|" in a cell."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bea_lib.plotting import markdown_table, savefig


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

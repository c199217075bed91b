"""The rerun banner: a page run with other parameters says so at its top, under its title."""
import nbformat

from bea_book.banner import BANNER, REMOVE, banner_markdown, mark_run_parameters


def _notebook(path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "P"}
    nb.cells = [nbformat.v4.new_markdown_cell("(a-label)=\n# A chapter\n\nWhat it is about."),
                nbformat.v4.new_code_cell("h = 1e-2  # step\nrho = 0.999  # ρ\nn = 300",
                                          metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("# Parameters\nrho = 0.99\n",
                                          metadata={"tags": ["injected-parameters"]}),
                nbformat.v4.new_code_cell("print(rho)")]
    nbformat.write(nb, path)
    return path


def test_a_changed_parameter_gets_a_banner_and_the_injected_cell_leaves_the_page(tmp_path):
    path = _notebook(tmp_path / "c.ipynb")
    record = {"profile": "default", "parameters": {"h": 0.01, "rho": 0.99, "n": 300},
              "parameter_order": ["h", "rho", "n"]}
    assert mark_run_parameters(path, record) == [("rho", 0.99, "0.999")]
    mark_run_parameters(path, record)  # staged twice: still one banner
    cells = nbformat.read(path, as_version=4).cells
    banners = [c for c in cells if BANNER in c.metadata.get("tags", [])]
    # at the top of the page: right under the title, above the chapter's first paragraph
    assert len(banners) == 1 and cells.index(banners[0]) == 1
    assert cells[0].source == "(a-label)=\n# A chapter" and cells[2].source == "What it is about."
    assert "`rho = 0.99` (default `0.999`)" in banners[0].source
    assert "h =" not in banners[0].source and "n =" not in banners[0].source
    injected = [c for c in cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected[0].metadata["tags"].count(REMOVE) == 1


def test_a_run_at_the_defaults_has_no_banner_and_a_profile_is_named(tmp_path):
    path = _notebook(tmp_path / "c.ipynb")
    record = {"profile": "default", "parameters": {"h": 0.01, "rho": 0.999, "n": 300}}
    assert mark_run_parameters(path, record) == []
    assert not any(BANNER in c.metadata.get("tags", [])
                   for c in nbformat.read(path, as_version=4).cells)
    assert "`smoke` profile" in banner_markdown("smoke", [])
    assert "`n = 30` (default `300`)" in banner_markdown("smoke", [("n", 30, "300")])


def test_the_papermill_route_is_named_custom_parameters():
    from bea_book.sources import PAPERMILL_LABEL

    text = banner_markdown(PAPERMILL_LABEL, [("rho", 0.99, "0.999")])
    assert "executed with custom parameters (papermill)" in text and "profile" not in text

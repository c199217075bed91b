"""The deposit zip (bea_book.archive): render records what it staged, and archive refuses a
build whose files changed after their run or after rendering, naming the file."""
import json

from bea_book import store
from test_book import HEADER, run_main, write_book


CLAIMS_AND_FIGURE = HEADER + """
# Figured

```{code-cell} ipython3
:tags: [parameters]

fig_dir = "figures"  # where figures are saved
```

```{code-cell} ipython3
import json
import os
import pathlib

pathlib.Path(fig_dir).mkdir(exist_ok=True)
pathlib.Path(fig_dir, "f.png").write_bytes(b"png")
record = dict(id="figured/c", chapter="figured", statement="s", paper="p", measured="m",
              status="passed", verdict="reproduced", profile=os.environ["BEA_PROFILE"],
              needs="smoke", section=None)
pathlib.Path("figured.claims.json").write_text(json.dumps({record["id"]: record}))
```
"""


def test_archive_refuses_a_build_whose_files_changed_after_commit_or_render(tmp_path, capsys):
    root = write_book(tmp_path / "src", {"figured": CLAIMS_AND_FIGURE},
                      profiles="figured:\n  smoke: {}\n")
    build = tmp_path / "build"
    where = ("--root", root, "--build-dir", build)
    assert run_main("all", "--profile", "smoke", *where) == 0
    shown = json.loads((build / "rendered.json").read_text())
    folder = store.current_run(build, "figured")
    assert shown["runs"] == {"figured": folder.name}
    assert shown["records"]["figured"] == store.sha256(folder / "run.json")
    assert "index.html" in shown["html"]

    def refused(path, pattern, change=lambda p: p.write_bytes(p.read_bytes() + b" ")):
        saved = path.read_bytes()
        change(path)
        assert run_main("archive", *where) == 1
        assert pattern in capsys.readouterr().err
        path.write_bytes(saved)

    refused(folder / "figured.claims.json", "figured.claims.json was changed after the run")
    refused(folder / "figures" / "f.png", "f.png was changed after the run")
    refused(folder / "figured.ipynb", "figured.ipynb was changed after the run")
    refused(folder / "run.json", "run.json changed after the book was rendered",
            lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "claims": {
                "passed": 5, "failed": 0, "measured": 0, "not_checked": 0}})))
    refused(build / "html" / "index.html", "index.html was changed after rendering")
    (folder / "figures" / "extra.png").write_bytes(b"x")
    assert run_main("archive", *where) == 1
    assert "extra.png was added after the run" in capsys.readouterr().err
    (folder / "figures" / "extra.png").unlink()
    assert run_main("archive", *where) == 0

    # an edited notebook: render names it and the command that replaces the run, which runs
    nb = folder / "figured.ipynb"
    nb.write_text(nb.read_text().replace("png", "PNG"))
    assert run_main("render", *where) == 1
    err = capsys.readouterr().err
    assert "run it again (`python -m bea_book run figured --profile smoke`)" in err
    assert run_main("run", "figured", "--profile", "smoke", *where) == 0
    out = capsys.readouterr().out
    assert "figured.ipynb was changed after the run" in out and "executing it again" in out
    assert run_main("render", *where) == 0

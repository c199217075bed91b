"""Small plotting helpers shared by the chapters: every figure is also saved as PNG and PDF."""
from __future__ import annotations

from pathlib import Path


def savefig(fig, name: str, fig_dir: str | Path = "figures") -> list[Path]:
    """Save ``fig`` as ``fig_dir/name.png`` and ``fig_dir/name.pdf``; returns the two paths."""
    fig_dir = Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    paths = [fig_dir / f"{name}.{ext}" for ext in ("png", "pdf")]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    return paths


def markdown_table(header: list[str], rows: list[list], fmt: str = "{:.3g}"):
    """A Markdown table for a chapter's output; floats are formatted with ``fmt``."""
    from IPython.display import Markdown

    def cell(x):  # a literal "|" would end the cell
        return (fmt.format(x) if isinstance(x, float) else str(x)).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(x) for x in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows]
    return Markdown("\n".join(lines))

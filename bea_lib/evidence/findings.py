r"""The Findings table: one row per registered statement, built from the recorded claims.

Every chapter records its checked claims (:func:`bea_lib.evidence.claims.claim`) in
``<chapter>.claims.json`` beside its executed notebook. The Findings chapter, executed last,
reads them all (:func:`load_claims`, which fails naming any chapter whose record is missing)
and makes them one row per statement of :mod:`bea_lib.evidence.registry` (:func:`findings_rows`).

**The verdict of a row** (:func:`row_verdict`) is the verdict of the statement's primary test,
declared in the registry before any chapter runs, and of nothing else: *reproduced* when it
passes, *contradicted* when it measures the opposite, *inconclusive* when its interval includes
zero, *outside the theory's range* when its validity gate failed, and *not tested here* when
the primary test was not recorded (or needs a larger profile). Supporting checks are shown
beside it and never folded in; consistency checks (which cannot fail on a wrong model of the
paper) are shown in a fold and not counted. Nothing in the table is typed by hand.

:func:`summary_markdown` is the table that opens both the Findings chapter and the
introduction (the Findings chapter writes it to :data:`SUMMARY_FILE`);
:func:`evidence_markdown` the evidence per row below it.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..base.vocab import CheckRole, ClaimStatus, Verdict
from . import registry
from .claims import Claim, claim_counts, read_claims
from .registry import Statement

SUMMARY_FILE = "findings_summary.md"  # written by the Findings chapter, included by the intro
_MARK = {ClaimStatus.PASSED: "✓", ClaimStatus.FAILED: "⚠", ClaimStatus.NOT_CHECKED: "○",
         ClaimStatus.MEASURED: "•"}


class MissingClaims(RuntimeError):
    """A chapter that the table of contents lists recorded no claims file."""


@dataclass(frozen=True)
class FindingsRow:
    """One row of the Findings table: a registered statement and what the book measured."""

    statement: Statement
    primary: Claim | None          # the record of its primary test, if a chapter made it
    supporting: tuple[Claim, ...]  # other checks of the statement, in recorded order
    consistency: tuple[Claim, ...]  # checks that cannot fail on a wrong model: not counted
    verdict: Verdict

    @property
    def paper(self) -> str:
        return self.statement.key


def load_claims(folder: str | Path, chapters: Iterable[str]) -> dict[str, Claim]:
    """Every claim recorded in ``folder``, after checking that each of ``chapters`` recorded some.

    ``chapters`` are the executed chapters that precede the Findings chapter in the table of
    contents. A missing ``<chapter>.claims.json`` raises :class:`MissingClaims` naming the
    chapter: the table would otherwise silently lose its rows.
    """
    folder = Path(folder)
    missing = [c for c in chapters if not (folder / f"{c}.claims.json").is_file()]
    if missing:
        raise MissingClaims(
            f"no claims recorded for chapter(s) {', '.join(missing)} in {folder.resolve()}: "
            "execute them before the Findings chapter (each must call bea_lib.claim)")
    return read_claims(folder)


def row_verdict(primary: Claim | None) -> Verdict:
    """The verdict of one row: its primary test's, or *not tested here* without one."""
    return Verdict.NOT_TESTED if primary is None else Verdict(primary.verdict)


def findings_rows(claims: dict[str, Claim], *, beyond: bool = False) -> list[FindingsRow]:
    """One :class:`FindingsRow` per registered statement of the paper, in the paper's order
    (``beyond=True``: the statements beyond the paper)."""
    unknown = sorted({c.paper for c in claims.values()} - set(registry.BY_KEY))
    if unknown:
        raise ValueError(f"claims name statements not in the registry: {', '.join(unknown)}")
    rows = []
    for st in (registry.BEYOND if beyond else registry.STATEMENTS):
        bearing = [c for c in claims.values() if c.paper == st.key]
        primary = next((c for c in bearing if c.role == CheckRole.PRIMARY), None)
        rows.append(FindingsRow(
            st, primary,
            tuple(c for c in bearing if c.role == CheckRole.SUPPORTING),
            tuple(c for c in bearing if c.role == CheckRole.CONSISTENCY),
            row_verdict(primary)))
    return rows


def _cell(text: str) -> str:
    """Text safe inside one cell of a Markdown table."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _link(claim: Claim | None, chapter: str, doc_prefix: str, text: str | None = None) -> str:
    text = text or chapter.replace("_", " ")
    if claim is not None and claim.section:
        return f"{{ref}}`{text} <{claim.section}>`"
    return f"{{doc}}`{text} <{doc_prefix}{chapter}>`"


def _mark(claim: Claim | None) -> str:
    return "○" if claim is None else _MARK[ClaimStatus(claim.status)]


def _tally(claims: Iterable[Claim]) -> str:
    """How many checks have each status, e.g. "3 ✓ · 1 •"; "—" for none."""
    claims = list(claims)
    if not claims:
        return "—"
    n = {s: sum(ClaimStatus(c.status) == s for c in claims) for s in _MARK}
    order = (ClaimStatus.PASSED, ClaimStatus.FAILED, ClaimStatus.MEASURED, ClaimStatus.NOT_CHECKED)
    return " · ".join(f"{n[s]} {_MARK[s]}" for s in order if n[s])


def _anchor(row: FindingsRow) -> str:
    """The MyST target of the row's evidence in the Findings chapter (ASCII letters and dashes)."""
    key = row.paper.lower().replace("β", "beta").replace("ρ", "rho").replace(">", "gt")
    words = "".join(ch if ch.isascii() and ch.isalnum() else " " for ch in key).split()
    return "findings-" + "-".join(words)


def _display(st: Statement) -> str:
    """The row's name: the key when it extends the paper's label, else the label and the key."""
    if st.beyond:
        return st.key[0].upper() + st.key[1:]
    return st.key if st.key.startswith(st.label) else f"{st.label} ({st.key})"


def summary_markdown(rows: list[FindingsRow], *, doc_prefix: str = "/book/") -> str:
    """The table of statements and verdicts (short cells): the paper's label, the statement
    in our words, the verdict (with ``†`` where the paper states a caveat or the test relies on
    a corrected reading, given under the row's evidence), the primary test's mark and a link to
    the section that computes it, and the tally of supporting checks."""
    header = ["paper", "statement", "verdict", "primary test", "supporting"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        st = row.statement
        chapter = st.primary.chapter if st.primary else "findings"
        verdict = f"**{row.verdict}**" + (" †" if st.caveat or st.note else "")
        primary = (f"{_mark(row.primary)} {_link(row.primary, chapter, doc_prefix)}"
                   if st.primary else "none declared")
        label = _display(st)
        cells = [f"{{ref}}`{label} <{_anchor(row)}>`", st.brief, verdict, primary,
                 _tally(row.supporting)]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def _item(c: Claim, doc_prefix: str) -> str:
    detect = f"; smallest detectable effect {c.detectable}" if c.detectable else ""
    verdict = (f" ({c.verdict})" if ClaimStatus(c.status) == ClaimStatus.MEASURED
               and c.verdict != Verdict.NOT_TESTED else "")
    return (f"- {_MARK[ClaimStatus(c.status)]} {' '.join(c.statement.split())}{verdict}: "
            f"{' '.join(str(c.measured).split())}{detect} ({_link(c, c.chapter, doc_prefix)})")


def evidence_markdown(rows: list[FindingsRow], *, doc_prefix: str = "/book/") -> str:
    """The evidence per row: verdict, the paper's caveat and our reading (beside the verdict,
    not folded in), the declared primary test and what it measured, the supporting checks, and
    the consistency checks in a fold."""
    blocks = []
    for row in rows:
        st = row.statement
        lines = [f"({_anchor(row)})=", f"### {_display(st)}", "",
                 f"*{st.ours}.* **Verdict: {row.verdict}.**"]
        if st.caveat:
            lines[-1] += f" † The paper's own caveat: {st.caveat}."
        if st.note:
            lines[-1] += f" † Our reading: {st.note}."
        p = st.primary
        if p is not None:
            measured = (_item(row.primary, doc_prefix)[2:] if row.primary else
                        "○ not recorded in this build" + (f": {st.pending}" if st.pending else ""))
            lines += ["", f"**Primary test** ({_link(row.primary, p.chapter, doc_prefix)}, "
                      f"`{p.claim}`): {p.quantity.what}; predicted: {p.direction.what}; "
                      f"threshold: {p.threshold.what}. **Measured:** {measured}",
                      "", "```{dropdown} The test as declared, with its reasons",
                      f"- quantity: {p.quantity.what} ({p.quantity.why});",
                      f"- prediction: {p.direction.what} ({p.direction.why});",
                      f"- validity gate: {p.gate.what} ({p.gate.why});",
                      f"- statistic: {p.statistic.what} ({p.statistic.why});",
                      f"- threshold: {p.threshold.what} ({p.threshold.why});",
                      f"- least profile: `{p.needs}`;",
                      f"- shown to fail on a wrong model: {p.mutant} (`tests/test_mutants.py`).",
                      "```"]
        if row.supporting:
            lines += ["", f"```{{dropdown}} Supporting checks, not folded into the verdict: "
                      f"{_tally(row.supporting)}", *[_item(c, doc_prefix) for c in row.supporting],
                      "```"]
        if row.consistency:
            lines += ["", "```{dropdown} Consistency checks (cannot fail on a wrong model of "
                      f"the paper; not counted): {len(row.consistency)}",
                      *[_item(c, doc_prefix) for c in row.consistency], "```"]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def verdict_counts(rows: list[FindingsRow]) -> dict[Verdict, int]:
    """How many rows got each verdict, in the vocabulary's order."""
    return {v: sum(r.verdict == v for r in rows) for v in Verdict}


def chapter_counts(claims: dict[str, Claim]) -> dict[str, dict[str, int]]:
    """Per chapter, :func:`bea_lib.evidence.claims.claim_counts` of its claims."""
    chapters = dict.fromkeys(c.chapter for c in claims.values())
    return {ch: claim_counts(c for c in claims.values() if c.chapter == ch) for ch in chapters}

r"""The Findings table: one row per statement of the paper, built from the recorded claims.

Every chapter records its checked claims (:func:`bea_lib.claims.claim`) in
``<chapter>.claims.json`` beside its executed notebook. The Findings chapter, executed last,
reads them all (:func:`load_claims`, which fails naming any chapter whose record is missing)
and turns them into one row per key of :data:`bea_lib.claims.PAPER_STATEMENTS`
(:func:`findings_rows`; :func:`findings_markdown` for the table, which counts the checks of each
row, and :func:`findings_details_markdown` for what each check measured). Nothing in either is
typed by hand.

**The verdict of a row** (:func:`row_verdict`) follows from the statuses and the declared
verdicts of the claims that bear on it:

1. if any claim *failed* at the profile it ran at, the row is *not confirmed*: the book's own
   evidence for it did not hold there;
2. otherwise, if some claims *passed* (or are *measurements*, recorded with the verdict their
   numbers gave and asserting nothing), the row gets the *weakest* verdict those declare,
   in the order confirmed > qualified > not confirmed > not tested here (one qualifying claim
   qualifies the row; a passed claim that declares "not confirmed" refutes it);
3. otherwise (no claim, or none checked at this profile) the row is *not tested here*.

Claims not checked at the profile (they need a larger one) count neither way; the row says how
many there were and which profile they need.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .claims import PAPER_STATEMENTS, Claim, read_claims
from .vocab import ClaimStatus, Verdict

# Strength of a verdict, for "the weakest declared verdict" (rule 2 of the module docstring).
_STRENGTH = {Verdict.CONFIRMED: 3, Verdict.QUALIFIED: 2, Verdict.NOT_CONFIRMED: 1,
             Verdict.NOT_TESTED: 0}
_MARK = {ClaimStatus.PASSED: "✓", ClaimStatus.FAILED: "⚠", ClaimStatus.NOT_CHECKED: "○",
         ClaimStatus.MEASURED: "•"}


class MissingClaims(RuntimeError):
    """A chapter that the table of contents lists recorded no claims file."""


@dataclass(frozen=True)
class FindingsRow:
    """One row of the Findings table: a statement of the paper and what the book measured."""

    paper: str                # the key of PAPER_STATEMENTS ("Theorem 3.1", "Figure 2", ...)
    statement: str            # the statement in our words (the value of PAPER_STATEMENTS)
    claims: tuple[Claim, ...]  # the claims that bear on it, in the order they were recorded
    verdict: Verdict


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


def row_verdict(claims: Iterable[Claim]) -> Verdict:
    """The verdict of one row from its claims (the rule of the module docstring)."""
    claims = list(claims)
    if any(c.status == ClaimStatus.FAILED for c in claims):
        return Verdict.NOT_CONFIRMED
    passed = [Verdict(c.verdict) for c in claims
              if c.status in (ClaimStatus.PASSED, ClaimStatus.MEASURED)]
    if passed:
        return min(passed, key=_STRENGTH.__getitem__)
    return Verdict.NOT_TESTED


def findings_rows(claims: dict[str, Claim]) -> list[FindingsRow]:
    """One :class:`FindingsRow` per key of PAPER_STATEMENTS, in the paper's order."""
    unknown = sorted({c.paper for c in claims.values()} - set(PAPER_STATEMENTS))
    if unknown:
        raise ValueError(f"claims name statements not in PAPER_STATEMENTS: {', '.join(unknown)}")
    rows = []
    for key, statement in PAPER_STATEMENTS.items():
        bearing = tuple(c for c in claims.values() if c.paper == key)
        rows.append(FindingsRow(key, statement, bearing, row_verdict(bearing)))
    return rows


def _cell(text: str) -> str:
    """Text safe inside one cell of a Markdown table."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _link(claim: Claim, doc_prefix: str) -> str:
    if claim.section:
        return f"{{ref}}`{claim.section}`"
    return f"{{doc}}`{doc_prefix}{claim.chapter}`"


def _where(row: FindingsRow, doc_prefix: str) -> str:
    links = list(dict.fromkeys(_link(c, doc_prefix) for c in row.claims))
    return "; ".join(links) if links else "—"


_ORDER = (ClaimStatus.PASSED, ClaimStatus.FAILED, ClaimStatus.MEASURED, ClaimStatus.NOT_CHECKED)


def _tally(row: FindingsRow) -> str:
    """How many of the row's claims have each status, e.g. "3 ✓ · 1 •"."""
    if not row.claims:
        return "no check in the book bears on it"
    n = {s: sum(ClaimStatus(c.status) == s for c in row.claims) for s in _ORDER}
    return " · ".join(f"{n[s]} {_MARK[s]}" for s in _ORDER if n[s])


def _profiles(row: FindingsRow) -> str:
    if not row.claims:
        return "—"
    text = ", ".join(dict.fromkeys(c.profile for c in row.claims))
    waiting = [c for c in row.claims if c.status == ClaimStatus.NOT_CHECKED]
    if waiting:
        needs = ", ".join(dict.fromkeys(f"`{c.needs}`" for c in waiting))
        text += f" ({len(waiting)} of {len(row.claims)} need {needs})"
    return text


def findings_markdown(rows: list[FindingsRow], *, doc_prefix: str = "/book/") -> str:
    """The Findings table as MyST Markdown: statement, where tested, checks, verdict, profile.

    The "checks" cell counts the row's claims by status (✓ passed, ⚠ failed, • measured, ○ not
    checked at this profile); what each measured is in :func:`findings_details_markdown`. Links
    are ``{ref}`` to a claim's section label, or ``{doc}`` to ``doc_prefix + chapter`` when the
    claim names no section.
    """
    header = ["paper", "statement (our words)", "tested in", "checks", "verdict", "profile"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row.paper, row.statement, _where(row, doc_prefix), _tally(row),
                 f"**{row.verdict}**", _profiles(row)]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def findings_details_markdown(rows: list[FindingsRow], *, doc_prefix: str = "/book/") -> str:
    """What each claim measured, statement by statement (the rows with claims, in the table's
    order): the statement and its verdict, then one item per claim with its status mark, its
    own statement, the figures it recorded and a link to where it was tested."""
    blocks = []
    for row in rows:
        if not row.claims:
            continue
        items = [f"- {_MARK[ClaimStatus(c.status)]} {' '.join(c.statement.split())}: "
                 f"{' '.join(str(c.measured).split())} ({_link(c, doc_prefix)})"
                 for c in row.claims]
        blocks.append("\n".join([f"**{row.paper}**: {row.statement} (**{row.verdict}**)", "",
                                  *items]))
    return "\n\n".join(blocks)


def verdict_counts(rows: list[FindingsRow]) -> dict[Verdict, int]:
    """How many rows got each verdict, in the vocabulary's order."""
    return {v: sum(r.verdict == v for r in rows) for v in Verdict}


def claim_counts(claims: dict[str, Claim]) -> dict[str, dict[ClaimStatus, int]]:
    """Per chapter: how many claims passed, failed and were not checked."""
    counts: dict[str, dict[ClaimStatus, int]] = {}
    for c in claims.values():
        per = counts.setdefault(c.chapter, {s: 0 for s in ClaimStatus})
        per[ClaimStatus(c.status)] += 1
    return counts

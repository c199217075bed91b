r"""The Findings table: one row per registered statement, built from the recorded claims.

Every chapter records its checked claims (:func:`bea_lib.evidence.claims.claim`) in
``<chapter>.claims.json`` beside its executed notebook. The Findings chapter, executed last,
reads them all (:func:`load_claims`) and turns them into one row per statement of
:mod:`bea_lib.evidence.registry` (:func:`findings_rows`). A chapter that did not run in this
build (a one-chapter build; :func:`not_run_chapters`) leaves its rows *not run in this build*,
shown.

**The verdict of a row** (:func:`row_verdict`) is the verdict of the statement's primary test,
declared in the registry before any chapter runs, and of nothing else: *reproduced* when it
passes, *contradicted* when it measures the opposite, *inconclusive* when its interval includes
zero, *outside the theory's range* when its validity gate failed, and *not tested here* when
the primary test was not recorded (or needs a larger profile). Supporting checks are shown
beside it and never folded in; consistency checks (which cannot fail on a wrong model of the
paper) are shown in a fold and not counted. Nothing in the table is typed by hand.

:func:`summary_sentences` are the plain sentences that open the introduction (written to
:data:`SENTENCES_FILE`), generated from the rows' verdicts and the recorded figures;
:func:`summary_markdown` is the table that opens both the Findings chapter and the
introduction (written to :data:`SUMMARY_FILE`); :func:`evidence_markdown` the evidence per row
below it.

Links, both ways: a row's label links to its evidence (:attr:`Statement.anchor
<bea_lib.evidence.registry.Statement.anchor>`), its primary test and each check to the claim's
line in its chapter (:func:`bea_lib.evidence.registry.claim_anchor`; to the section the claim
names with ``section=``, which a chapter whose claim lines are off the page must give), and
every claim line links back to the row.
A row decided by a run with parameters of the reader's own is marked with them
(:attr:`bea_lib.evidence.claims.Claim.custom`).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..base.vocab import CheckRole, ClaimStatus, ExperimentVerdict, Verdict
from . import registry
from .claims import Claim, claim_counts, custom_text, read_claims
from .registry import Statement, claim_anchor
from .statistics import NETWORK_LIMIT

SUMMARY_FILE = "findings_summary.md"  # written by the Findings chapter, included by the intro
SENTENCES_FILE = "findings_sentences.md"  # the intro's opening sentences, written beside it
SUMMARY_CLASS = "bea-summary"  # the CSS class of the summary table (stacked on a phone)
_MARK = {ClaimStatus.PASSED: "✓", ClaimStatus.FAILED: "⚠", ClaimStatus.NOT_CHECKED: "○",
         ClaimStatus.MEASURED: "•"}


@dataclass(frozen=True)
class FindingsRow:
    """One row of the Findings table: a registered statement and what the book measured."""

    statement: Statement
    primary: Claim | None          # the record of its primary test, if a chapter made it
    supporting: tuple[Claim, ...]  # other checks of the statement, in recorded order
    consistency: tuple[Claim, ...]  # checks that cannot fail on a wrong model: not counted
    verdict: Verdict | ExperimentVerdict | None  # the book's own experiments: ExperimentVerdict;
    # None: a group beyond the paper that declares no primary test (its checks decide nothing)
    proxy: Claim | None = None     # a network statement's proxy answer, if a chapter made it

    @property
    def answer(self) -> str:
        """The proxy's answer (a ProxyAnswer), "" without a recorded one."""
        return self.proxy.answer if self.proxy is not None else ""

    @property
    def paper(self) -> str:
        return self.statement.key

    @property
    def custom(self) -> dict:
        """The parameters of the reader's own with which the primary test ran (``{}``)."""
        return dict(self.primary.custom) if self.primary is not None else {}


def not_run_chapters(folder: str | Path, chapters: Iterable[str]) -> list[str]:
    """The chapters of ``chapters`` that recorded no ``<chapter>.claims.json`` in ``folder``:
    not run in this build (their rows say so)."""
    folder = Path(folder)
    return [c for c in chapters if not (folder / f"{c}.claims.json").is_file()]


def load_claims(folder: str | Path) -> dict[str, Claim]:
    """Every claim recorded in ``folder`` (``<chapter>.claims.json`` files): id -> claim."""
    return read_claims(folder)


def row_verdict(primary: Claim | None, *, beyond: bool = False) -> Verdict | ExperimentVerdict:
    """The verdict of one row: its primary test's, or *not tested here* without one (*not run
    here* for one of the book's own experiments, whose words are
    :class:`~bea_lib.base.vocab.ExperimentVerdict`'s)."""
    words = ExperimentVerdict if beyond else Verdict
    if primary is None:
        return ExperimentVerdict.NOT_RUN if beyond else Verdict.NOT_TESTED
    return words(primary.verdict)


def findings_rows(claims: dict[str, Claim], *, beyond: bool = False,
                  not_run: Iterable[str] = ()) -> list[FindingsRow]:
    """One :class:`FindingsRow` per registered statement of the paper, in the paper's order
    (``beyond=True``: the statements beyond the paper); a row whose primary test belongs to a
    chapter of ``not_run`` is *not run in this build*."""
    unknown = sorted({c.paper for c in claims.values()} - set(registry.BY_KEY))
    if unknown:
        raise ValueError(f"claims name statements not in the registry: {', '.join(unknown)}")
    not_run = set(not_run)
    rows = []
    for st in (registry.BEYOND if beyond else registry.STATEMENTS):
        bearing = [c for c in claims.values() if c.paper == st.key]
        primary = next((c for c in bearing if c.role == CheckRole.PRIMARY), None)
        verdict = (None if st.beyond and st.primary is None else
                   Verdict.NOT_RUN if primary is None and st.primary is not None
                   and st.primary.chapter in not_run else row_verdict(primary, beyond=st.beyond))
        rows.append(FindingsRow(
            st, primary,
            tuple(c for c in bearing if c.role == CheckRole.SUPPORTING),
            tuple(c for c in bearing if c.role == CheckRole.CONSISTENCY),
            verdict, next((c for c in bearing if c.role == CheckRole.PROXY), None)))
    return rows


def _cell(text: str) -> str:
    """Text safe inside one cell of a Markdown table."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _link(claim: Claim | None, chapter: str, doc_prefix: str, text: str | None = None) -> str:
    """A link to the evidence of a claim: the section its chapter named (``section=``: a chapter
    whose claim lines are off the page must name one), else the claim's own line, right under
    its numbers; the chapter without a recorded claim."""
    text = text or chapter.replace("_", " ")
    if claim is not None:
        return f"{{ref}}`{text} <{claim.section or claim_anchor(claim.id)}>`"
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


def _display(st: Statement) -> str:
    """The row's name: the key when it extends the paper's label, else the label and the key."""
    if st.beyond:
        return st.key[0].upper() + st.key[1:]
    return st.key if st.key.startswith(st.label) else f"{st.label} ({st.key})"


def _ref(row: FindingsRow) -> str:
    """The row's name, linked to its evidence."""
    return f"{{ref}}`{_display(row.statement)} <{row.statement.anchor}>`"


def custom_mark(custom: dict) -> str:
    """The mark of a row or run decided with parameters of the reader's own."""
    return f"*custom run: {custom_text(custom)}*" if custom else ""


def custom_mark_plain(texts: list[str]) -> str:
    """The same mark in a sentence, for rows decided by runs with these parameters."""
    return "decided by a custom run: " + "; ".join(texts)


def summary_markdown(rows: list[FindingsRow], *, doc_prefix: str = "/book/") -> str:
    """The table of statements and verdicts (short cells), in a container of class
    :data:`SUMMARY_CLASS` (stacked on a phone): the paper's label linked to the row's evidence,
    the statement in our words, the verdict (with ``†`` where the paper states a caveat or the
    test relies on a corrected reading, given under the row's evidence, and the custom
    parameters of the run that decided it), the primary test's mark and a link to its line in
    the chapter, and the tally of supporting checks."""
    header = ["paper", "statement", "verdict", "primary test", "supporting"]
    lines = [f"```{{container}} {SUMMARY_CLASS}",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        st = row.statement
        chapter = st.primary.chapter if st.primary else "findings"
        verdict = f"**{row.verdict}**" + (" †" if st.caveat or st.note else "")
        if st.proxy is not None:
            tested = row.verdict in (Verdict.REPRODUCED, Verdict.CONTRADICTED,
                                     Verdict.INCONCLUSIVE)  # decided on in-range runs
            where = ", in its range" if tested else ""
            verdict = f"proxy: {_answer(row)}; theory{where}: {verdict}"
        if row.custom:
            verdict += f" {custom_mark(row.custom)}"
        primary = (f"{_mark(row.primary)} {_link(row.primary, chapter, doc_prefix)}"
                   if st.primary else "none declared")
        cells = [_ref(row), st.brief, verdict, primary, _tally(row.supporting)]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join([*lines, "```"])


def _answer(row: FindingsRow) -> str:
    """The proxy's answer of a network row, as a glossary term; without one, why: *not run in
    this build*, *not tested here* (recorded below its least profile) or *not recorded*."""
    if row.answer:
        return f"{{term}}`{row.answer}`"
    if row.proxy is not None and ClaimStatus(row.proxy.status) == ClaimStatus.NOT_CHECKED:
        return str(Verdict.NOT_TESTED)
    return str(Verdict.NOT_RUN) if row.verdict == Verdict.NOT_RUN else "not recorded"


def _item(c: Claim, doc_prefix: str) -> str:
    detect = f"; smallest detectable effect {c.detectable}" if c.detectable else ""
    verdict = (f" ({c.verdict})" if ClaimStatus(c.status) == ClaimStatus.MEASURED
               and c.verdict != Verdict.NOT_TESTED else "")
    custom = f" ({custom_mark(c.custom)})" if c.custom else ""
    if c.answer:
        verdict = f" ({{term}}`{c.answer}`)"
    return (f"- {_MARK[ClaimStatus(c.status)]} {' '.join(c.statement.split())}{verdict}: "
            f"{' '.join(str(c.measured).split())}{detect}{custom} "
            f"({_link(c, c.chapter, doc_prefix)})")


def _not_recorded(row: FindingsRow) -> str:
    st = row.statement
    if row.verdict == Verdict.NOT_RUN:
        return f"○ not run in this build (chapter `{st.primary.chapter}`)"
    return "○ not recorded in this build" + (f": {st.pending}" if st.pending else "")


def evidence_markdown(rows: list[FindingsRow], *, doc_prefix: str = "/book/") -> str:
    """The evidence per row: verdict, the paper's caveat and our reading (beside the verdict,
    not folded in), the declared primary test and what it measured, the supporting checks, and
    the consistency checks in a fold."""
    blocks = []
    for row in rows:
        st = row.statement
        lines = [f"({st.anchor})=", f"### {_display(st)}", "",
                 f"*{st.ours}.* **Verdict: {row.verdict}.**" if row.verdict is not None else
                 f"*{st.ours}.* **No verdict:** no primary test is declared for this group; its "
                 "checks are listed without one."]
        if row.custom:
            lines[-1] += f" ({custom_mark(row.custom)})"
        if st.caveat:
            lines[-1] += f" † The paper's own caveat: {st.caveat}."
        if st.note:
            lines[-1] += f" † Our reading: {st.note}."
        p = st.primary
        if p is not None:
            measured = (_item(row.primary, doc_prefix)[2:] if row.primary else
                        _not_recorded(row))
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
                      *_proxy_declared(st), "```"]
        if st.proxy is not None:
            lines += _proxy_lines(row, doc_prefix)
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


def _proxy_declared(st: Statement) -> list[str]:
    """A network row's proxy test as declared (the fold of the primary test's declaration)."""
    q = st.proxy
    if q is None:
        return []
    declared = f", declared {st.declared}" if st.declared else ""
    return ["", f"The proxy's answer (`{q.claim}`{declared}), what the proxy shows where the "
            "paper looks, whatever the theory says there:",
            f"- quantity: {q.quantity.what} ({q.quantity.why});",
            f"- the paper's direction: {q.direction.what} ({q.direction.why});",
            f"- read: {q.reading.what} ({q.reading.why});",
            f"- statistic: {q.statistic.what} ({q.statistic.why})."]


def _proxy_lines(row: FindingsRow, doc_prefix: str) -> list[str]:
    """A network row's second answer in a fold whose title gives it: the proxy's, read where the
    paper reads (what it measured inside), and, for a figure of the paper's networks, that they
    are not tested at the paper's scale, with the command that runs them."""
    q, c = row.statement.proxy, row.proxy
    answer = c.answer if c is not None and c.answer else _answer(row)
    lines = ["", f"```{{dropdown}} The proxy's answer, where the paper looks: {answer}"]
    if c is not None and c.answer:
        detect = f"; smallest detectable effect {c.detectable}" if c.detectable else ""
        lines.append(f"{' '.join(str(c.measured).split())}{detect}"
                     + (f" ({custom_mark(c.custom)})" if c.custom else "")
                     + f" ({_link(c, q.chapter, doc_prefix)}, `{q.claim}`).")
    elif c is not None:
        lines.append(f"Not checked at the `{c.profile}` profile; it needs `{c.needs}` "
                     f"({_link(c, q.chapter, doc_prefix)}, `{q.claim}`).")
    else:
        lines.append(f"Not recorded in this build (`{q.claim}`).")
    if q.paper_scale:
        lines += ["", "The paper's ResNets: not tested at the paper's scale "
                  f"(`{registry.PAPER_SCALE}` runs them, on a GPU with CIFAR under `data/`)."]
    return [*lines, "```"]


def _names(rows: list[FindingsRow]) -> str:
    """The rows' names, linked to their evidence, as "A", "A and B" or "A, B and C"."""
    names = [_ref(r) for r in rows]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _why_not_tested(rows: list[FindingsRow], said: set[str]) -> str:
    """Why rows are *not tested here*, when their primary tests all need a larger profile; the
    reason given once (``said`` holds what was given already)."""
    recorded = [r.primary for r in rows]
    if recorded and all(c is not None and ClaimStatus(c.status) == ClaimStatus.NOT_CHECKED
                        for c in recorded):
        needs = sorted({c.needs for c in recorded})
        profiles = sorted({c.profile for c in recorded})
        why = (f"their tests need the {' or '.join(f'`{n}`' for n in needs)} profile, and this "
               f"build ran at {', '.join(f'`{p}`' for p in profiles)}")
        if why in said:
            return " (for the same reason)"
        said.add(why)
        return f": {why}"
    return ""


def _counted(rows: list[FindingsRow], *, name_up_to: int = 3, said: set[str] | None = None,
             name_reproduced: bool = False) -> list[str]:
    """Per verdict (the vocabulary's order, *reproduced* first), "k are <verdict>", the rows
    named (and linked) where there are at most ``name_up_to`` of them (the reproduced ones only
    with ``name_reproduced``)."""
    parts, said = [], set() if said is None else said
    for v in Verdict:
        got = [r for r in rows if r.verdict == v]
        if not got:
            continue
        verb = "is" if len(got) == 1 else "are"
        named = v != Verdict.REPRODUCED or name_reproduced
        who = _names(got) if named and len(got) <= name_up_to else len(got)
        why = _why_not_tested(got, said) if v == Verdict.NOT_TESTED else ""
        custom = sorted({custom_text(r.custom) for r in got if r.custom})
        if custom:
            why += f" ({custom_mark_plain(custom)})"
        parts.append(f"{who} {verb} *{v}*{why}")
    return parts


def _proxy_phrase(row: FindingsRow) -> str:
    """The proxy's answer of a network row in a sentence, with the minimum detectable effect of
    a *no trend*; without a recorded answer, why (:func:`_answer`)."""
    if not row.answer:
        return _answer(row)
    mde = (f" (minimum detectable effect {row.proxy.detectable})"
           if row.answer == "no trend" and row.proxy.detectable else "")
    return f"{{term}}`{row.answer}`{mde}"


def _outside_reading(rows: list[FindingsRow]) -> Claim | None:
    """The first claim of ``rows`` (primary, else supporting) that read *outside the theory's
    range* and reports the bias ratio it measured first ("bias ratio 7.9 to 12 along the
    runs; ..."): the recorded figure behind that sentence of the introduction."""
    for row in rows:
        for c in (row.primary, *row.supporting):
            if (c is not None and Verdict(c.verdict) == Verdict.OUTSIDE_RANGE
                    and str(c.measured).lstrip().lower().startswith("bias ratio")):
                return c
    return None


def summary_sentences(rows: list[FindingsRow], beyond: list[FindingsRow]) -> str:
    """The plain sentences that open the introduction, as a short list generated from the
    rows' verdicts and the figures recorded with them: what holds (the statements about the
    analysis), what could not be tested and why (the statements about trained networks), and
    what the book adds beyond the paper. Every row named links to its evidence, a recorded
    figure to its line."""
    analysis = [r for r in rows if not r.statement.networks]
    nets = [r for r in rows if r.statement.networks]
    items, said = [], set()
    if analysis:
        items.append(f"**What holds.** Of the paper's {len(analysis)} statements about its "
                     "analysis (the update rule, the modified flows and their order, the bias "
                     f"terms, the bilinear model), {'; '.join(_counted(analysis, said=said))}.")
    if nets:
        decided = any(r.verdict in (Verdict.REPRODUCED, Verdict.CONTRADICTED,
                                    Verdict.INCONCLUSIVE) for r in nets)
        counted = "; ".join(_counted(nets, name_up_to=3 if decided else 0, said=said,
                                     name_reproduced=True))
        text = (f"**What could not be tested, and why.** Of its {len(nets)} statements about "
                f"trained networks, the theory's prediction, tested inside its range where it "
                f"has one: {counted}." if decided else
                f"**What could not be tested, and why.** None of its {len(nets)} statements "
                f"about trained networks could be decided here: {counted}.")
        reading = _outside_reading(nets)
        if reading is not None or any(r.verdict == Verdict.OUTSIDE_RANGE for r in nets):
            text += (" The networks' training runs, as measured, lie outside the theory's "
                     f"range: their bias ratio h‖f₁‖/‖f₀‖ is above {NETWORK_LIMIT:g}, where the "
                     "modified flow no longer describes the iterates, so those runs are "
                     "evidence neither for nor against the paper")
            text += ("." if reading is None else
                     f" (recorded: {' '.join(str(reading.measured).split()).split(';')[0]}; "
                     f"{_link(reading, reading.chapter, '/book/', 'the measurement')}).")
        proxies = [r for r in nets if r.statement.proxy is not None]
        if proxies:
            text += (" Where the paper looks, the proxy network shows: "
                     + "; ".join(f"{_ref(r)}, {_proxy_phrase(r)}" for r in proxies) + ".")
        items.append(text)
    if beyond:
        what = "; ".join(r.statement.brief for r in beyond)
        text = (f"**What the book adds.** Beyond the paper, {len(beyond)} groups of checks: "
                f"{what}.")
        decided = [r for r in beyond if r.statement.primary is not None]
        if decided:
            text += " " + " ".join(f"{_ref(r)} has a declared primary test: *{r.verdict}*."
                                   for r in decided)
        items.append(text)
    return "\n".join(f"- {item}" for item in items)


def build_note(claims: dict[str, Claim], not_run: Iterable[str]) -> str:
    """The note under the summary table: the profiles the chapters ran at, the chapters run
    with parameters of the reader's own (their rows are marked), those not run in this build,
    and where the evidence is."""
    profiles = sorted({c.profile for c in claims.values()})
    text = (f"*Executed at the profile(s) {', '.join(profiles) or 'none'}; the evidence for "
            "each row is in {ref}`findings-evidence`.*")
    custom = custom_runs(claims)
    if custom:
        text += (" **Custom run:** " + "; ".join(f"{{doc}}`/book/{ch}` ran with "
                                                 f"{custom_text(v)}" for ch, v in custom.items())
                 + ". The rows it decided are marked; the published verdicts are those of the "
                 "`default` profile.")
    not_run = list(not_run)
    if not_run:
        text += (f" **Not run in this build:** {', '.join(f'`{c}`' for c in not_run)}; "
                 "their rows say so.")
    return text


def verdict_counts(rows: list[FindingsRow]) -> dict[Verdict, int]:
    """How many rows got each verdict, in the vocabulary's order."""
    return {v: sum(r.verdict == v for r in rows) for v in Verdict}


def chapter_counts(claims: dict[str, Claim]) -> dict[str, dict[str, int]]:
    """Per chapter, :func:`bea_lib.evidence.claims.claim_counts` of its claims."""
    chapters = dict.fromkeys(c.chapter for c in claims.values())
    return {ch: claim_counts(c for c in claims.values() if c.chapter == ch) for ch in chapters}


def custom_runs(claims: dict[str, Claim]) -> dict[str, dict]:
    """chapter -> the parameters of the reader's own it ran with, for the chapters that had
    any (the note above the summary table)."""
    found: dict[str, dict] = {}
    for c in claims.values():
        if c.custom:
            found.setdefault(c.chapter, dict(c.custom))
    return found

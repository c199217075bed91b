r"""Checked claims: a sentence of the book that states a finding, tested by the numbers beside it.

A chapter states a finding in prose and, right after the computation, calls :func:`claim`
with the figures it measured and whether they bear the sentence out. :func:`claim`

- records the claim in ``<chapter>.claims.json`` in the working directory (the executed
  notebook's folder when the book runner executes a chapter), merged by id and written
  atomically;
- displays one line: "✓ Checked: …" when it holds, a visible ⚠ warning admonition when it does
  not ("with these parameters the claim above does not hold: measured …"), or a note when the
  profile is too small to test it.

The book runner sets ``BEA_CHAPTER``, ``BEA_PROFILE`` and, for a run with parameters of the
reader's own (``-p``, a parameters file), ``BEA_CUSTOM`` (a JSON mapping name -> value) for the
kernel; outside the runner the chapter is the part of the id before ``/``, the profile is
``default`` and no parameter is custom. A claim records its custom parameters, so that the
Findings table and the introduction mark the rows a custom run decided.

The line a reader sees carries the anchor :func:`bea_lib.evidence.registry.claim_anchor` (the
Findings row links to it) and links back to the statement's row in the Findings chapter
(:attr:`bea_lib.evidence.registry.Statement.anchor`). The runner reads the
claims after a run: a failed claim fails ``make test`` (smoke profile) and ``make book``
(default profile); other profiles and a reader's own parameters show the ⚠ without failing.
The Findings chapter is generated from these files (:func:`read_claims`), one row per statement
of :mod:`bea_lib.evidence.registry`, whose verdict is that of the statement's primary test alone.

Profiles are ordered by size, :data:`PROFILES`; a claim that only a larger run can test says
which profile it needs (``needs="default"``) and below it counts neither way.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..base.fileio import atomic_write_json
from ..base.vocab import CheckRole, ClaimStatus, ExperimentVerdict, ProxyAnswer, Verdict
from . import registry

PROFILES = ("smoke", "default", "paper")  # in increasing size; other names rank as "default"


@dataclass(frozen=True)
class Claim:
    """One checked sentence of a chapter, as recorded for the Findings chapter."""

    id: str              # "chapter/short-name", unique in the book
    chapter: str
    statement: str       # the sentence of the book being checked, in our words
    paper: str           # the key of the statement it bears on (bea_lib.evidence.registry)
    measured: str        # the figures behind it, e.g. "slope 1.98 over h = 2e-3 ... 1.25e-4"
    status: ClaimStatus
    verdict: Verdict | ExperimentVerdict  # what it says of the statement (only a primary
    # test's sets the row's); the book's own experiments (registry.BEYOND) speak in
    # ExperimentVerdict's words: supported, never "reproduced"
    profile: str         # the profile the chapter ran at
    needs: str           # the least profile at which the claim is checked
    section: str | None = None  # a MyST target "(label)=" in the chapter, for the Findings link
    role: CheckRole = CheckRole.SUPPORTING
    detectable: str = ""  # for an inconclusive reading: the smallest effect it could detect
    custom: dict = field(default_factory=dict)  # parameters of the reader's own: name -> value
    answer: str = ""     # a proxy reading's ProxyAnswer (same direction, opposite, ...)


def _rank(profile: str) -> int:
    name = profile.split(" ")[0]  # "paper (= default)" ranks as paper
    return PROFILES.index(name) if name in PROFILES else PROFILES.index("default")


def current_profile() -> str:
    """The profile the book runner is executing (``BEA_PROFILE``), ``default`` outside it."""
    return os.environ.get("BEA_PROFILE", "default")


def custom_parameters() -> dict:
    """The parameters of the reader's own in this run (``BEA_CUSTOM``, JSON); ``{}`` without."""
    raw = os.environ.get("BEA_CUSTOM", "")
    try:
        found = json.loads(raw) if raw else {}
    except ValueError:
        raise ValueError(f"BEA_CUSTOM must be a JSON mapping of parameters, got {raw!r}") from None
    if not isinstance(found, dict):
        raise ValueError(f"BEA_CUSTOM must be a JSON mapping of parameters, got {raw!r}")
    return found


def custom_text(custom: dict) -> str:
    """The custom parameters as a reader reads them: "rho = 0.99, eps = 1e-06"."""
    return ", ".join(f"{name} = {value!r}" for name, value in custom.items())


def claim(id: str, *, statement: str, paper: str, passed: bool | None, measured: str,
          verdict: Verdict | None = None, consistency: bool = False, detectable: str = "",
          needs: str = "smoke", section: str | None = None, answer: ProxyAnswer | None = None,
          folder: str | Path = ".") -> None:
    """Record one checked claim and display its line (see the module docstring).

    ``paper`` is the key of a statement of :mod:`~bea_lib.evidence.registry`, which sets the
    claim's role: the statement's declared primary test is *primary*; any other claim is
    *supporting*, or a *consistency check* with ``consistency=True`` (a check that cannot fail
    on a wrong model of the paper: shown in a fold, not counted as evidence).

    ``passed`` is the check computed from the numbers just shown: a passed check is
    *reproduced*, a failed one *contradicted*. ``passed=None`` records a *measurement*: a
    result the chapter reports with its ``verdict`` (from :func:`bea_lib.base.vocab.paper_verdict`
    for a trend), asserting nothing; ``detectable`` then says the smallest effect the reading
    could have detected. Below the ``needs`` profile the claim is not checked and its verdict is
    *not tested here*. A claim on one of the book's own experiments (a statement beyond the
    paper) speaks in :class:`~bea_lib.base.vocab.ExperimentVerdict`'s words instead: *supported*,
    *not supported*, and *not run here* (:func:`verdict_words`). Displays Markdown; returns
    nothing, so a cell may end with the call.

    ``answer`` is what a proxy network shows where the paper looks
    (:class:`~bea_lib.base.vocab.ProxyAnswer`), for a measurement (``passed=None``); the claim
    the registry declares as a statement's proxy test (:attr:`Statement.proxy
    <bea_lib.evidence.registry.Statement.proxy>`) has the role *proxy answer* and must give one.
    """
    if "/" not in id:
        raise ValueError(f"claim id must look like 'chapter/name', got {id!r}")
    registered = registry.statement(paper)  # a clear error naming the allowed keys
    if needs not in PROFILES:
        raise ValueError(f"needs must be one of {', '.join(PROFILES)}, got {needs!r}")
    primary = registry.primary_for(id)
    if primary is not None and primary.key != registered.key:
        raise ValueError(f"claim {id!r} is the primary test of {primary.key!r}, not of {paper!r}")
    if primary is not None and consistency:
        raise ValueError(f"claim {id!r} is a primary test; it cannot be a consistency check")
    proxy = registry.proxy_for(id)
    if proxy is not None and proxy.key != registered.key:
        raise ValueError(f"claim {id!r} is the proxy answer of {proxy.key!r}, not of {paper!r}")
    if answer is not None:
        answer = ProxyAnswer(answer)  # a clear error naming the allowed answers
        if passed is not None:
            raise ValueError(f"claim {id!r}: a proxy answer is a measurement (passed=None)")
    elif proxy is not None:
        raise ValueError(f"claim {id!r} is the proxy answer of {proxy.key!r}: give its answer")
    role = (CheckRole.PRIMARY if primary else CheckRole.PROXY if proxy else
            CheckRole.CONSISTENCY if consistency else CheckRole.SUPPORTING)
    if passed is None and verdict is None and primary is not None:
        raise ValueError(f"claim {id!r}: a primary test recorded as a measurement "
                         "(passed=None) must give its verdict")
    chapter = os.environ.get("BEA_CHAPTER") or id.split("/")[0]
    profile = current_profile()
    words = verdict_words(paper)
    not_tested = words(Verdict.NOT_TESTED if words is Verdict else ExperimentVerdict.NOT_RUN)
    if _rank(profile) < _rank(needs):
        status, verdict = ClaimStatus.NOT_CHECKED, not_tested
    elif passed is None:
        status = ClaimStatus.MEASURED
        verdict = not_tested if verdict is None else words(verdict)
    else:
        status = ClaimStatus.PASSED if bool(passed) else ClaimStatus.FAILED
        held, failed = ((Verdict.REPRODUCED, Verdict.CONTRADICTED) if words is Verdict else
                        (ExperimentVerdict.SUPPORTED, ExperimentVerdict.NOT_SUPPORTED))
        verdict = held if bool(passed) else failed
    record = Claim(id, chapter, statement, paper, measured, status, verdict, profile, needs,
                   section, role, detectable, custom_parameters(),
                   "" if answer is None or status == ClaimStatus.NOT_CHECKED else str(answer))
    path = Path(folder) / f"{chapter}.claims.json"
    recorded = json.loads(path.read_text()) if path.is_file() else {}
    recorded[id] = asdict(record)
    atomic_write_json(path, recorded)
    _display(record)


def verdict_words(paper: str) -> type[Verdict] | type[ExperimentVerdict]:
    """The vocabulary of a verdict on the registered statement ``paper``: a statement of the
    paper's is *reproduced* or not (:class:`~bea_lib.base.vocab.Verdict`); one of the book's own
    experiments (``beyond``) is *supported* or not
    (:class:`~bea_lib.base.vocab.ExperimentVerdict`); ``words(value)`` of the other's value
    raises ValueError."""
    return ExperimentVerdict if registry.statement(paper).beyond else Verdict


def claim_markdown(record: Claim) -> str:
    """The line a reader sees under the finding: ✓, a ⚠ admonition, or a not-checked note.

    It opens with the claim's anchor (the Findings row links to it) and names the statement
    with a link back to its row of the Findings chapter; a custom run says so."""
    if record.paper in registry.BY_KEY:
        st = registry.statement(record.paper)
        label = f"{{ref}}`{st.label} <{st.anchor}>`"
    else:
        label = record.paper
    role = {CheckRole.PRIMARY: "primary test of ", CheckRole.SUPPORTING: "",
            CheckRole.CONSISTENCY: "consistency check, ",
            CheckRole.PROXY: "proxy answer to "}[CheckRole(record.role)]
    where = f"{role}{label}"
    if record.answer:
        where += f"; {{term}}`{record.answer}`"
    if record.custom:
        where += f"; custom run: {custom_text(record.custom)}"
    target = f"({registry.claim_anchor(record.id)})=\n"
    if record.status == ClaimStatus.PASSED:
        return f"{target}✓ *Checked ({where}):* {record.measured}."
    if record.status == ClaimStatus.MEASURED:
        extra = f"; smallest detectable effect {record.detectable}" if record.detectable else ""
        verdict = ("" if record.verdict in (Verdict.NOT_TESTED, ExperimentVerdict.NOT_RUN)
                   else f"; {record.verdict}")
        return f"{target}*Measured ({where}{verdict}{extra}):* {record.measured}."
    if record.status == ClaimStatus.NOT_CHECKED:
        return (f"{target}*Not checked at the {record.profile} profile ({where}); it needs the "
                f"`{record.needs}` profile. Measured here: {record.measured}.*")
    return (f"{target}```{{warning}}\n⚠ With these parameters the claim above does not hold: "
            f"measured {record.measured} ({where}; claim `{record.id}`).\n```")


def _display(record: Claim) -> None:
    from IPython.display import Markdown, display
    display(Markdown(claim_markdown(record)))


def read_claims(folder: str | Path) -> dict[str, Claim]:
    """Every claim recorded in ``folder/*.claims.json``: id -> :class:`Claim`."""
    found = {}
    for path in sorted(Path(folder).glob("*.claims.json")):
        for key, rec in json.loads(path.read_text()).items():
            words = verdict_words(rec["paper"]) if rec["paper"] in registry.BY_KEY else Verdict
            found[key] = Claim(**{**rec, "status": ClaimStatus(rec["status"]),
                                  "verdict": words(rec["verdict"]),
                                  "role": CheckRole(rec.get("role", CheckRole.SUPPORTING))})
    return found


def failed(claims: dict[str, Claim]) -> list[Claim]:
    """The claims that were checked and did not hold."""
    return [c for c in claims.values() if c.status == ClaimStatus.FAILED]


COUNT_KEYS = ("passed", "failed", "measured", "not_checked", "consistency")
_COUNT_KEY = {ClaimStatus.PASSED: "passed", ClaimStatus.FAILED: "failed",
              ClaimStatus.MEASURED: "measured", ClaimStatus.NOT_CHECKED: "not_checked"}


def claim_counts(claims) -> dict[str, int]:
    """How many of ``claims`` (an iterable of :class:`Claim`) passed, failed, are measurements
    and were not checked at this profile (all of them: the build fails on any failed one), and
    how many of them are consistency checks (not counted as evidence by the Findings). The one
    count used by the book runner's record and by the Findings chapter."""
    counts = dict.fromkeys(COUNT_KEYS, 0)
    for c in claims:
        counts[_COUNT_KEY[ClaimStatus(c.status)]] += 1
        counts["consistency"] += CheckRole(c.role) == CheckRole.CONSISTENCY
    return counts

r"""Checked claims: a sentence of the book that states a finding, tested by the numbers beside it.

A chapter states a finding in prose and, right after the computation, calls :func:`claim`
with the figures it measured and whether they bear the sentence out. :func:`claim`

- records the claim in ``<chapter>.claims.json`` in the working directory (the executed
  notebook's folder when the book runner executes a chapter), merged by id and written
  atomically;
- displays one line: "✓ Checked: …" when it holds, a visible ⚠ warning admonition when it does
  not ("with these parameters the claim above does not hold: measured …"), or a note when the
  profile is too small to test it.

The book runner sets ``BEA_CHAPTER`` and ``BEA_PROFILE`` for the kernel; outside the runner the
chapter is the part of the id before ``/`` and the profile is ``default``. The runner reads the
claims after a run: a failed claim fails ``make test`` (smoke profile) and ``make book``
(default profile); other profiles and a reader's own parameters show the ⚠ without failing.
The Findings chapter is generated from these files (:func:`read_claims`).

Profiles are ordered by size, :data:`PROFILES`; a claim that only a larger run can test says
which profile it needs (``needs="default"``) and below it counts neither way.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from .fileio import atomic_write_json
from .vocab import ClaimStatus, Verdict

PROFILES = ("smoke", "default", "paper")  # in increasing size; other names rank as "default"

# The statements of the paper that claims bear on (the ``paper`` argument of :func:`claim`),
# one row each in the Findings chapter, in the paper's order.
PAPER_STATEMENTS = {
    "Definition 2.1": "Adam and RMSProp as the paper defines them (ε inside the root)",
    "(2.2)-(2.3)": "the modified flow of full-batch Adam, O(h²)-close to the iterates",
    "(1.1)": "the modified flow of heavy-ball momentum and GD (signs restored)",
    "Example 2.3": "Adam with large ε behaves as heavy-ball with step h/√ε",
    "Table 1": "which norm the bias term penalises, by the size of ε against g²",
    "Figure 1": "the one-dimensional bias potential F",
    "(2.5)": "the modified-loss form of the bias when ε is large against g²",
    "Theorem 3.1": "the modified flow of mini-batch Adam, with its inner index range",
    "Figure 2": "bilinear model: larger β moves the trajectory towards the flattest solutions",
    "Figure 3": "bilinear model: larger ρ (and larger h when ρ > β) moves it away",
    "Figure 4": "networks: ‖∇E‖₁,ε and test accuracy against ρ",
    "Figure 5": "networks: ‖∇E‖₁,ε and test accuracy against β",
    "Figure 6": "networks: the 'hills' of ‖∇E‖₁,ε along training",
    "explicit regulariser": "adding the bias term to the loss reproduces Adam's implicit bias",
    "Assumption (3.1)": "bounded derivatives of the loss (violated by ReLU networks)",
    "Discussion": "Adam against GD and heavy-ball; trends reverse in the spike regime",
    "beyond the paper": "checks the paper does not make: orders, placements, mechanism",
}


@dataclass(frozen=True)
class Claim:
    """One checked sentence of a chapter, as recorded for the Findings chapter."""

    id: str              # "chapter/short-name", unique in the book
    chapter: str
    statement: str       # the sentence of the book being checked, in our words
    paper: str           # the paper's statement it bears on ("Theorem 3.1", "Figure 2", ...)
    measured: str        # the figures behind the verdict, e.g. "slope 1.98 over h = 2e-3 ... 1.25e-4"
    status: ClaimStatus
    verdict: Verdict     # what the claim, when it holds, says of the paper's statement
    profile: str         # the profile the chapter ran at
    needs: str           # the least profile at which the claim is checked
    section: str | None = None  # a MyST target "(label)=" in the chapter, for the Findings link


def _rank(profile: str) -> int:
    name = profile.split(" ")[0]  # "paper (= default)" ranks as paper
    return PROFILES.index(name) if name in PROFILES else PROFILES.index("default")


def current_profile() -> str:
    """The profile the book runner is executing (``BEA_PROFILE``), ``default`` outside it."""
    return os.environ.get("BEA_PROFILE", "default")


def claim(id: str, *, statement: str, paper: str, passed: bool | None, measured: str,
          verdict: Verdict = Verdict.CONFIRMED, needs: str = "smoke",
          section: str | None = None, folder: str | Path = ".") -> None:
    """Record one checked claim and display its verdict line (see the module docstring).

    ``passed`` is the check computed from the numbers just shown; ``verdict`` is what the
    paper's statement gets when the claim holds (a claim that the transcribed index range fails
    holds with verdict ``QUALIFIED``). ``passed=None`` records a *measurement* rather than a
    check: a result the chapter reports with its verdict for the paper's statement (a trend
    that a sweep does or does not show) but does not assert; it is shown as "Measured", never
    as ✓, and counts neither as passed nor as failed. Displays Markdown; returns nothing, so a
    cell may end with the call.
    """
    if "/" not in id:
        raise ValueError(f"claim id must look like 'chapter/name', got {id!r}")
    if paper not in PAPER_STATEMENTS:
        raise ValueError(f"paper must be one of {', '.join(map(repr, PAPER_STATEMENTS))}, got {paper!r}")
    if needs not in PROFILES:
        raise ValueError(f"needs must be one of {', '.join(PROFILES)}, got {needs!r}")
    verdict = Verdict(verdict)
    chapter = os.environ.get("BEA_CHAPTER") or id.split("/")[0]
    profile = current_profile()
    if _rank(profile) < _rank(needs):
        status = ClaimStatus.NOT_CHECKED
    elif passed is None:
        status = ClaimStatus.MEASURED
    else:
        status = ClaimStatus.PASSED if bool(passed) else ClaimStatus.FAILED
    record = Claim(id, chapter, statement, paper, measured, status, verdict, profile, needs, section)
    path = Path(folder) / f"{chapter}.claims.json"
    recorded = json.loads(path.read_text()) if path.is_file() else {}
    recorded[id] = asdict(record)
    atomic_write_json(path, recorded)
    _display(record)


def claim_markdown(record: Claim) -> str:
    """The line a reader sees under the finding: ✓, a ⚠ admonition, or a not-checked note."""
    if record.status == ClaimStatus.PASSED:
        return f"✓ *Checked ({record.paper}):* {record.measured}."
    if record.status == ClaimStatus.MEASURED:
        return f"*Measured ({record.paper}; verdict: {record.verdict}):* {record.measured}."
    if record.status == ClaimStatus.NOT_CHECKED:
        return (f"*Not checked at the {record.profile} profile ({record.paper}); it needs the "
                f"`{record.needs}` profile. Measured here: {record.measured}.*")
    return ("```{warning}\n⚠ With these parameters the claim above does not hold: measured "
            f"{record.measured} ({record.paper}; claim `{record.id}`).\n```")


def _display(record: Claim) -> None:
    from IPython.display import Markdown, display
    display(Markdown(claim_markdown(record)))


def read_claims(folder: str | Path) -> dict[str, Claim]:
    """Every claim recorded in ``folder/*.claims.json``: id -> :class:`Claim`."""
    found = {}
    for path in sorted(Path(folder).glob("*.claims.json")):
        for key, rec in json.loads(path.read_text()).items():
            found[key] = Claim(**{**rec, "status": ClaimStatus(rec["status"]),
                                  "verdict": Verdict(rec["verdict"])})
    return found


def failed(claims: dict[str, Claim]) -> list[Claim]:
    """The claims that were checked and did not hold."""
    return [c for c in claims.values() if c.status == ClaimStatus.FAILED]

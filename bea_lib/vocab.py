"""The project's vocabularies: one ``StrEnum`` per idea, shared by the library, the chapters
and the Findings chapter. A value compares equal to its string (``Verdict.CONFIRMED ==
"confirmed"``), so JSON files written with them read back as plain strings.
"""
from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    """What a measurement says about one statement of the paper (the Findings chapter)."""

    CONFIRMED = "confirmed"          # the statement holds, as stated, where we measured it
    QUALIFIED = "qualified"          # it holds with a correction (a sign, a range, a condition)
    NOT_CONFIRMED = "not confirmed"  # the measurement does not show it
    NOT_TESTED = "not tested here"   # the book does not (or cannot at this scale) measure it


class ClaimStatus(StrEnum):
    """The outcome of one checked sentence of the book at the profile it was run at."""

    PASSED = "passed"
    FAILED = "failed"
    NOT_CHECKED = "not checked at this profile"  # the claim needs a larger profile

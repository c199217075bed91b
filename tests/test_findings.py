"""The Findings table: built from recorded claims, one row per statement, verdict by the rule."""
import pytest

from bea_lib.claims import PAPER_STATEMENTS, Claim, claim
from bea_lib.findings import (MissingClaims, claim_counts, findings_details_markdown,
                              findings_markdown, findings_rows,
                              load_claims, row_verdict)
from bea_lib.vocab import ClaimStatus, Verdict


def _record(status, verdict=Verdict.CONFIRMED, paper="Figure 2", id="bilinear/x"):
    return Claim(id, id.split("/")[0], "s", paper, "m", ClaimStatus(status), Verdict(verdict),
                 "smoke", "smoke")


@pytest.mark.parametrize("statuses_verdicts, expected", [
    ([], Verdict.NOT_TESTED),
    ([("not checked at this profile", "confirmed")], Verdict.NOT_TESTED),
    ([("passed", "confirmed"), ("passed", "confirmed")], Verdict.CONFIRMED),
    ([("passed", "confirmed"), ("passed", "qualified")], Verdict.QUALIFIED),  # the weakest
    ([("passed", "qualified"), ("passed", "not confirmed")], Verdict.NOT_CONFIRMED),
    ([("passed", "confirmed"), ("failed", "confirmed")], Verdict.NOT_CONFIRMED),  # any failed
    ([("passed", "confirmed"), ("not checked at this profile", "qualified")], Verdict.CONFIRMED),
    ([("measured", "not confirmed"), ("passed", "confirmed")], Verdict.NOT_CONFIRMED),  # weakest
    ([("measured", "qualified")], Verdict.QUALIFIED),  # a measurement carries its verdict
])
def test_row_verdict_follows_the_documented_rule(statuses_verdicts, expected):
    assert row_verdict([_record(s, v) for s, v in statuses_verdicts]) == expected


def _chapter_claims(folder, monkeypatch):
    monkeypatch.setenv("BEA_PROFILE", "smoke")
    monkeypatch.delenv("BEA_CHAPTER", raising=False)
    claim("bilinear/beta", statement="larger β ends nearer the cross", paper="Figure 2",
          passed=True, measured="4 of 4 pairs", section="bilinear-figure2", folder=folder)
    claim("bilinear/rho", statement="larger ρ ends farther", paper="Figure 3", passed=False,
          measured="1 of 5 pairs | odd", folder=folder)
    claim("error_order/slopes", statement="slopes near 2", paper="(2.2)-(2.3)", passed=False,
          measured="slope 1.5", needs="default", folder=folder)


def test_one_row_per_statement_in_the_papers_order(tmp_path, monkeypatch):
    _chapter_claims(tmp_path, monkeypatch)
    rows = findings_rows(load_claims(tmp_path, ["bilinear", "error_order"]))
    assert [r.paper for r in rows] == list(PAPER_STATEMENTS)
    by_key = {r.paper: r for r in rows}
    assert by_key["Figure 2"].verdict == Verdict.CONFIRMED
    assert by_key["Figure 3"].verdict == Verdict.NOT_CONFIRMED
    assert by_key["(2.2)-(2.3)"].verdict == Verdict.NOT_TESTED  # needs default; ran at smoke
    assert by_key["Theorem 3.1"].verdict == Verdict.NOT_TESTED and not by_key["Theorem 3.1"].claims
    counts = claim_counts(load_claims(tmp_path, []))
    assert counts["bilinear"][ClaimStatus.FAILED] == 1
    assert counts["error_order"][ClaimStatus.NOT_CHECKED] == 1


def test_the_table_is_myst_markdown_with_links_and_profiles(tmp_path, monkeypatch):
    _chapter_claims(tmp_path, monkeypatch)
    text = findings_markdown(findings_rows(load_claims(tmp_path, ["bilinear"])))
    lines = text.splitlines()
    assert lines[0].startswith("| paper |") and lines[1] == "|" + "---|" * 6
    assert len(lines) == 2 + len(PAPER_STATEMENTS)
    assert all(line.count(" | ") + 2 == 7 or "\\|" in line for line in lines[2:])
    fig2 = next(line for line in lines if line.startswith("| Figure 2 |"))
    assert "{ref}`bilinear-figure2`" in fig2 and "| 1 ✓ |" in fig2 and "**confirmed**" in fig2
    fig3 = next(line for line in lines if line.startswith("| Figure 3 |"))
    assert "{doc}`/book/bilinear`" in fig3 and "| 1 ⚠ |" in fig3
    order = next(line for line in lines if line.startswith("| (2.2)-(2.3) |"))
    assert "**not tested here**" in order and "smoke (1 of 1 need `default`)" in order
    assert "| 1 ○ |" in order
    theorem = next(line for line in lines if line.startswith("| Theorem 3.1 |"))
    assert "no check in the book bears on it" in theorem


def test_the_details_list_what_each_check_measured_under_its_statement(tmp_path, monkeypatch):
    _chapter_claims(tmp_path, monkeypatch)
    text = findings_details_markdown(findings_rows(load_claims(tmp_path, ["bilinear"])))
    blocks = text.split("\n\n")
    heads = [b for b in blocks if b.startswith("**")]
    assert [h.split("**")[1] for h in heads] == ["(2.2)-(2.3)", "Figure 2", "Figure 3"]
    assert ("- ✓ larger β ends nearer the cross: 4 of 4 pairs ({ref}`bilinear-figure2`)"
            in text)
    assert "- ⚠ larger ρ ends farther: 1 of 5 pairs | odd ({doc}`/book/bilinear`)" in text
    assert "- ○ slopes near 2: slope 1.5" in text
    assert "Theorem 3.1" not in text  # no claim bears on it: no block


def test_a_missing_chapter_record_fails_naming_the_chapter(tmp_path, monkeypatch):
    _chapter_claims(tmp_path, monkeypatch)
    with pytest.raises(MissingClaims, match="chapter\\(s\\) networks, adam"):
        load_claims(tmp_path, ["bilinear", "networks", "adam"])

"""The Findings table: one row per registered statement, the verdict its primary test's alone."""
import pytest

from bea_lib.evidence import registry
from bea_lib.evidence.claims import claim
from bea_lib.evidence.findings import (build_note, chapter_counts, evidence_markdown, findings_rows,
                              load_claims, not_run_chapters, summary_markdown, summary_sentences)
from bea_lib.base.vocab import Verdict


def _chapter_claims(folder, monkeypatch):
    monkeypatch.setenv("BEA_PROFILE", "smoke")
    monkeypatch.delenv("BEA_CHAPTER", raising=False)
    # Figure 2 (β): the primary passes; a supporting check fails (shown, not folded in)
    claim("bilinear/trajectory/fig2-beta", statement="larger β moves towards the cross",
          paper="Figure 2 (β)", passed=True, measured="4 of 4 comparisons",
          section="bilinear-trajectory", folder=folder)
    claim("bilinear/end-point/fig2-beta", statement="larger β ends nearer", paper="Figure 2 (β)",
          passed=False, measured="1 of 5 pairs | odd", folder=folder)
    claim("bilinear/cross", statement="the argmin is on the diagonal", paper="Figure 2 (β)",
          passed=True, measured="1e-12", consistency=True, folder=folder)
    # Figure 2 (ρ): the primary fails
    claim("bilinear/trajectory/fig2-rho", statement="larger ρ moves away", paper="Figure 2 (ρ)",
          passed=False, measured="2 of 4", folder=folder)
    # (2.2)–(2.3): the primary needs default
    claim("error_order/slopes/Adam, ε inside", statement="slopes 1 and 2", paper="(2.2)–(2.3)",
          passed=False, measured="slope 1.5", needs="default", folder=folder)
    # Figure 4: only a supporting measurement; the declared primary is not recorded
    claim("networks/mlp-fig4-norm", statement="norm rises with ρ", paper="Figure 4",
          passed=None, verdict=Verdict.INCONCLUSIVE, measured="0.1 [-2, 2]", folder=folder)


def test_one_row_per_statement_and_the_verdict_is_the_primary_tests(tmp_path, monkeypatch):
    _chapter_claims(tmp_path, monkeypatch)
    rows = findings_rows(load_claims(tmp_path))
    assert [r.paper for r in rows] == [s.key for s in registry.STATEMENTS]
    by_key = {r.paper: r for r in rows}
    fig2 = by_key["Figure 2 (β)"]
    assert fig2.verdict == Verdict.REPRODUCED  # the failed supporting check is not folded in
    assert [c.id for c in fig2.supporting] == ["bilinear/end-point/fig2-beta"]
    assert [c.id for c in fig2.consistency] == ["bilinear/cross"]
    assert by_key["Figure 2 (ρ)"].verdict == Verdict.CONTRADICTED
    assert by_key["(2.2)–(2.3)"].verdict == Verdict.NOT_TESTED  # needs default; ran at smoke
    assert by_key["Figure 4"].verdict == Verdict.NOT_TESTED      # a supporting reading only
    assert by_key["Theorem 3.1"].primary is None
    assert chapter_counts(load_claims(tmp_path))["bilinear"] == {
        "passed": 2, "failed": 2, "measured": 0, "not_checked": 0, "consistency": 1}


def test_the_summary_is_short_myst_with_one_link_per_row(tmp_path, monkeypatch):
    _chapter_claims(tmp_path, monkeypatch)
    text = summary_markdown(findings_rows(load_claims(tmp_path)))
    lines = text.splitlines()
    assert lines[0] == "```{container} bea-summary" and lines[-1] == "```"  # stacked on a phone
    lines = lines[1:-1]
    assert lines[0].startswith("| paper |") and lines[1] == "|" + "---|" * 5
    assert len(lines) == 2 + len(registry.STATEMENTS)
    fig2 = next(line for line in lines if "Figure 2 (β) <" in line)
    # the row's name links to its evidence; its primary test to the section the claim names ...
    assert fig2.startswith("| {ref}`Figure 2 (β) <findings-figure-2-beta>` |")
    assert "**reproduced**" in fig2 and "✓ {ref}`bilinear <bilinear-trajectory>`" in fig2
    assert "| 1 ⚠ |" in fig2  # the supporting tally sits in its own column
    fig2r = next(line for line in lines if "Figure 2 (ρ) <" in line)
    assert "**contradicted**" in fig2r and "⚠" in fig2r
    # ... or, without one, to the claim's own line in the chapter
    assert "⚠ {ref}`bilinear <claim-bilinear-trajectory-fig2-rho>`" in fig2r
    order = next(line for line in lines if "(2.2)–(2.3) <" in line)
    assert "**not tested here** †" in order and "○" in order  # † the paper's own caveat
    # the verdict never contradicts the primary test's mark
    for line in lines[2:]:
        if "**reproduced**" in line:
            assert "| ✓ " in line
        if "**contradicted**" in line:
            assert "| ⚠ " in line


def test_the_evidence_declares_the_primary_test_and_folds_consistency(tmp_path, monkeypatch):
    _chapter_claims(tmp_path, monkeypatch)
    text = evidence_markdown(findings_rows(load_claims(tmp_path)))
    assert "(findings-figure-2-beta)=" in text and "(findings-figure-3-rho-gt-beta)=" in text
    assert "- threshold: all of them, and at least one comparison" in text
    assert "The paper's own caveat: written \"up to terms that rapidly go to zero" in text
    assert "```{dropdown} Consistency checks" in text
    assert "**Measured:** ○ not recorded in this build\n" in text  # Figure 4's primary test
    assert "```{dropdown} The test as declared, with its reasons" in text
    assert "- ⚠ larger β ends nearer: 1 of 5 pairs | odd" in text
    assert "```{dropdown} Supporting checks, not folded into the verdict: 1 ⚠" in text


def test_a_chapter_not_run_in_this_build_leaves_its_rows_so_marked(tmp_path, monkeypatch):
    _chapter_claims(tmp_path, monkeypatch)
    not_run = not_run_chapters(tmp_path, ["bilinear", "minibatch", "adam", "networks"])
    assert not_run == ["minibatch", "adam"]
    claims = load_claims(tmp_path)
    rows = {r.paper: r for r in findings_rows(claims, not_run=not_run)}
    assert rows["Theorem 3.1"].verdict == Verdict.NOT_RUN  # its primary test is minibatch's
    assert rows["Remark 2.2"].verdict == Verdict.NOT_RUN
    assert rows["Figure 2 (β)"].verdict == Verdict.REPRODUCED
    assert rows["Figure 4"].verdict == Verdict.NOT_TESTED  # networks ran; its primary did not
    text = evidence_markdown(list(rows.values()))
    assert "**Measured:** ○ not run in this build (chapter `minibatch`)" in text
    assert "**not run in this build**" in summary_markdown(list(rows.values()))
    note = build_note(claims, not_run)
    assert "**Not run in this build:** `minibatch`, `adam`" in note


def test_a_custom_run_marks_its_rows_and_the_note(tmp_path, monkeypatch):
    monkeypatch.setenv("BEA_PROFILE", "default")
    monkeypatch.setenv("BEA_CUSTOM", '{"rho": 0.99}')
    claim("bilinear/trajectory/fig2-beta", statement="larger β moves towards the cross",
          paper="Figure 2 (β)", passed=True, measured="4 of 4 comparisons", folder=tmp_path)
    monkeypatch.delenv("BEA_CUSTOM")
    claim("bilinear/trajectory/fig2-rho", statement="larger ρ moves away", paper="Figure 2 (ρ)",
          passed=True, measured="4 of 4", folder=tmp_path)
    claims = load_claims(tmp_path)
    rows = {r.paper: r for r in findings_rows(claims)}
    assert rows["Figure 2 (β)"].custom == {"rho": 0.99} and rows["Figure 2 (ρ)"].custom == {}
    table = summary_markdown(list(rows.values()))
    marked = [line for line in table.splitlines() if "custom run" in line]
    assert len(marked) == 1 and "Figure 2 (β) <" in marked[0] and "rho = 0.99" in marked[0]
    assert "**Custom run:** {doc}`/book/bilinear` ran with rho = 0.99" in build_note(claims, [])
    assert "(*custom run: rho = 0.99*)" in evidence_markdown([rows["Figure 2 (β)"]])
    sentences = summary_sentences(list(rows.values()), [])
    assert "2 are *reproduced* (decided by a custom run: rho = 0.99)" in sentences


def test_the_opening_sentences_come_from_the_verdicts(tmp_path, monkeypatch):
    _chapter_claims(tmp_path, monkeypatch)
    claims = load_claims(tmp_path)
    text = summary_sentences(findings_rows(claims), findings_rows(claims, beyond=True))
    n_analysis = sum(not st.networks for st in registry.STATEMENTS)
    assert text.startswith(f"- **What holds.** Of the paper's {n_analysis} statements about its "
                           "analysis")
    assert len(text.splitlines()) == 3  # what holds, what could not be tested, what it adds
    sentences = text.replace(".**", "").replace("\n", " ").count(". ") + 1
    assert 3 <= sentences <= 5
    assert "1 is *reproduced*" in text  # Figure 2 (β), the one passed primary test
    assert "{ref}`Figure 2 (ρ) <findings-figure-2-rho>` is *contradicted*" in text
    assert "None of its 5 statements about trained networks could be decided here" in text
    assert "outside the theory's range" not in text  # nothing recorded it in these claims
    assert "- **What the book adds.** Beyond the paper, 5 groups of checks" in text
    # a reading outside the theory's range is quoted, with a link to its line
    claim("networks/gate", statement="the runs' bias ratio", paper="Figure 4", passed=None,
          verdict=Verdict.OUTSIDE_RANGE, measured="bias ratio 7.9 to 12; 0 of 4 inside",
          folder=tmp_path)
    claims = load_claims(tmp_path)
    text = summary_sentences(findings_rows(claims), [])
    assert ("(recorded: bias ratio 7.9 to 12; {ref}`the measurement <claim-networks-gate>`)"
            in text)



def test_a_network_row_gives_two_answers(tmp_path, monkeypatch):
    monkeypatch.setenv("BEA_PROFILE", "default")
    claim("networks/fig5-in-range", statement="the norm falls with β inside the range",
          paper="Figure 5", passed=None, verdict=Verdict.REPRODUCED, needs="default",
          measured="reproduced: slope 0.2 [0.1, 0.3]", folder=tmp_path)
    claim("networks/fig5-proxy", statement="the proxy's norm at loss 0.1 against β",
          paper="Figure 5", passed=None, answer="opposite", verdict=Verdict.NOT_TESTED,
          needs="default", detectable="0.013", measured="slope −4 [−5, −3]", folder=tmp_path)
    claim("networks/fig4-proxy", statement="the proxy's norm at a quarter of the epochs",
          paper="Figure 4", passed=None, answer="no trend", needs="default",
          detectable="0.0025", measured="slope 0.1 [−1, 1]", folder=tmp_path)
    with pytest.raises(ValueError, match="proxy answer of 'Figure 6': give its answer"):
        claim("networks/fig6-proxy", statement="hills", paper="Figure 6", passed=None,
              measured="", folder=tmp_path)
    with pytest.raises(ValueError, match="not a valid ProxyAnswer"):
        claim("networks/fig6-proxy", statement="hills", paper="Figure 6", passed=None,
              answer="sideways", measured="", folder=tmp_path)
    rows = {r.paper: r for r in findings_rows(load_claims(tmp_path))}
    fig5 = rows["Figure 5"]
    assert fig5.verdict == Verdict.REPRODUCED and fig5.answer == "opposite"  # not folded in
    assert fig5.supporting == () and fig5.proxy.role == "proxy answer"
    table = summary_markdown(list(rows.values()))
    line = next(x for x in table.splitlines() if "Figure 5 <" in x)
    assert "proxy: {term}`opposite`; theory, in its range: **reproduced**" in line
    assert "proxy: not recorded; theory: **not tested here**" in next(
        x for x in table.splitlines() if "Figure 6 <" in x)
    text = evidence_markdown([fig5])
    assert "The proxy's answer (`networks/fig5-proxy`, declared 2026-12-07)" in text
    assert "```{dropdown} The proxy's answer, where the paper looks: opposite\n" in text
    assert "slope −4 [−5, −3]; smallest detectable effect 0.013 (" in text
    assert ("not tested at the paper's scale (`python -m bea_book run networks --profile "
            "paper`") in text
    opt = next(r for r in findings_rows(load_claims(tmp_path))
               if r.paper == "Section 4, first conclusion (experiment)")
    assert "paper's scale" not in evidence_markdown([opt])  # the paper ran no ResNet there
    monkeypatch.setenv("BEA_PROFILE", "smoke")  # below its least profile: not tested here
    (tmp_path / "smoke").mkdir()
    claim("networks/fig6-proxy", statement="hills", paper="Figure 6", passed=None,
          answer="no trend", needs="default", measured="", folder=tmp_path / "smoke")
    [fig6] = [r for r in findings_rows(load_claims(tmp_path / "smoke")) if r.paper == "Figure 6"]
    assert "proxy: not tested here; theory:" in summary_markdown([fig6])
    sentences = summary_sentences(list(rows.values()), [])
    assert ("the proxy network shows: {ref}`Figure 4 <findings-figure-4>`, {term}`no trend` "
            "(minimum detectable effect 0.0025); {ref}`Figure 5 <findings-figure-5>`, "
            "{term}`opposite`;") in sentences
    assert "Figure 5 <findings-figure-5>` is *reproduced*" in sentences  # the theory's answer


def test_the_mechanism_row_and_the_intro_print_the_experiments_own_words(tmp_path, monkeypatch):
    from bea_lib.base.vocab import ExperimentVerdict
    monkeypatch.setenv("BEA_PROFILE", "default")
    claim("mechanism/kappa-sign-flip", statement="the κ sign flip", paper="mechanism",
          passed=None, verdict=ExperimentVerdict.SUPPORTED, measured="supported: …",
          folder=tmp_path)
    beyond = findings_rows(load_claims(tmp_path), beyond=True)
    (row,) = [r for r in beyond if r.paper == "mechanism"]
    assert row.verdict == ExperimentVerdict.SUPPORTED
    text = summary_sentences([], beyond) + evidence_markdown(beyond)
    assert "has a declared primary test: *supported*" in text
    assert "**Verdict: supported.**" in text and "reproduced" not in text
    empty = findings_rows({}, beyond=True)  # recorded nowhere: not run here, in its own words
    assert [r.verdict for r in empty if r.paper == "mechanism"] == [ExperimentVerdict.NOT_RUN]


def test_every_registered_label_is_the_papers_own():
    from pathlib import Path
    # shared/ lies beside the repository (its parent folder), in a checkout and in CI
    text = (Path(__file__).resolve().parents[1].parent / "shared" / "paper"
            / "implicit-bias-of-adam.txt")
    if not text.is_file():
        pytest.skip("the paper's transcription is not beside the repository")
    paper = text.read_text()
    for st in registry.STATEMENTS:
        for part in st.label.replace("–", " ").replace(",", " ").split():
            if part[0].isdigit() or part[0] == "(":
                assert part in paper, (st.key, part)


def test_a_group_beyond_the_paper_without_a_primary_test_gets_no_verdict_word(tmp_path,
                                                                              monkeypatch):
    """Checks that ran but decide nothing are not called "not run here" (they ran)."""
    monkeypatch.setenv("BEA_PROFILE", "default")
    undeclared = [st for st in registry.BEYOND if st.primary is None]
    assert undeclared  # the registry has such groups (the explicit regulariser, orders, ...)
    claim("beyond/a-check", statement="a check", paper=undeclared[0].key, passed=True,
          measured="1.0", folder=tmp_path)
    rows = findings_rows(load_claims(tmp_path), beyond=True)
    assert [r.verdict for r in rows if r.statement.primary is None] == [None] * len(undeclared)
    text = evidence_markdown(rows)
    block = text.split(f"### {undeclared[0].key[0].upper() + undeclared[0].key[1:]}")[1]
    block = block.split("### ")[0]
    assert "**No verdict:** no primary test is declared" in block
    assert "Verdict:" not in block.replace("**No verdict:**", "")
    assert "**Verdict: supported.**" in text or "**Verdict: not run here.**" in text  # mechanism


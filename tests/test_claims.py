"""Checked claims: recorded per chapter, status by profile, role from the registry, the line a
reader sees."""
import json

import pytest

from bea_lib.base.vocab import CheckRole, ClaimStatus, Verdict
from bea_lib.evidence.claims import claim, claim_counts, failed, read_claims
from bea_lib.evidence.claims import claim_markdown as _with_anchor


def claim_markdown(record):
    """The line a reader sees, without the anchor above it (tested on its own below)."""
    anchor, line = _with_anchor(record).split("\n", 1)
    assert anchor == f"(claim-{record.id.replace('/', '-')})="
    return line


def _claim(tmp_path, **kw):
    args = dict(statement="the slope is about 2", paper="Theorem 3.1", passed=True,
                measured="slope 1.98")
    args.update(kw)
    claim(kw.pop("id", "order/slope"), folder=tmp_path,
          **{k: v for k, v in args.items() if k != "id"})


def test_claims_are_recorded_per_chapter_and_merged_by_id(tmp_path, monkeypatch):
    monkeypatch.setenv("BEA_PROFILE", "smoke")
    monkeypatch.delenv("BEA_CHAPTER", raising=False)
    _claim(tmp_path)
    _claim(tmp_path, id="order/other", passed=False, measured="slope 1.2")
    _claim(tmp_path, id="order/slope", passed=False, measured="slope 0.9")  # replaces the first
    recorded = json.loads((tmp_path / "order.claims.json").read_text())
    assert sorted(recorded) == ["order/other", "order/slope"]
    claims = read_claims(tmp_path)
    assert claims["order/slope"].measured == "slope 0.9"
    assert [c.id for c in failed(claims)] == ["order/other", "order/slope"]


def test_a_claim_above_the_profile_is_not_checked_and_not_tested(tmp_path, monkeypatch):
    monkeypatch.setenv("BEA_PROFILE", "smoke")
    _claim(tmp_path, passed=False, needs="default")
    (record,) = read_claims(tmp_path).values()
    assert record.status == ClaimStatus.NOT_CHECKED and record.verdict == Verdict.NOT_TESTED
    assert failed({record.id: record}) == []
    monkeypatch.setenv("BEA_PROFILE", "paper (= default)")
    _claim(tmp_path, passed=False, needs="default")
    assert read_claims(tmp_path)["order/slope"].status == ClaimStatus.FAILED


def test_a_check_gives_reproduced_or_contradicted(tmp_path, monkeypatch):
    monkeypatch.setenv("BEA_PROFILE", "default")
    _claim(tmp_path)
    _claim(tmp_path, id="order/bad", passed=False, measured="slope 1.1")
    claims = read_claims(tmp_path)
    assert claims["order/slope"].verdict == Verdict.REPRODUCED
    assert claims["order/bad"].verdict == Verdict.CONTRADICTED
    assert claim_markdown(claims["order/slope"]).startswith("✓")
    warning = claim_markdown(claims["order/bad"])
    assert warning.startswith("```{warning}") and "does not hold: measured slope 1.1" in warning


def test_the_role_comes_from_the_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("BEA_PROFILE", "default")
    _claim(tmp_path, id="minibatch/order-slopes")                       # declared primary
    _claim(tmp_path, id="minibatch/other")                              # supporting
    _claim(tmp_path, id="minibatch/identity", consistency=True)         # consistency
    claims = read_claims(tmp_path)
    assert claims["minibatch/order-slopes"].role == CheckRole.PRIMARY
    assert claims["minibatch/other"].role == CheckRole.SUPPORTING
    assert claims["minibatch/identity"].role == CheckRole.CONSISTENCY
    line = claim_markdown(claims["minibatch/order-slopes"])
    # the statement links back to its row of the Findings chapter
    assert "primary test of {ref}`Theorem 3.1 <findings-theorem-3-1>`" in line
    with pytest.raises(ValueError, match="is the primary test of 'Theorem 3.1', not of 'Figure 1'"):
        _claim(tmp_path, id="minibatch/order-slopes", paper="Figure 1")
    with pytest.raises(ValueError, match="cannot be a consistency check"):
        _claim(tmp_path, id="minibatch/order-slopes", consistency=True)


def test_bad_claim_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="claim id must look like"):
        claim("slope", statement="s", paper="Figure 1", passed=True, measured="m", folder=tmp_path)
    with pytest.raises(ValueError, match="paper must be one of 'Definition 2.1'"):
        claim("a/b", statement="s", paper="Theorem 9", passed=True, measured="m", folder=tmp_path)
    with pytest.raises(ValueError, match="needs must be one of smoke, default, paper"):
        claim("a/b", statement="s", paper="Figure 1", passed=True, measured="m", needs="huge",
              folder=tmp_path)
    with pytest.raises(ValueError, match="must give its verdict"):
        claim("bias/figure-1-shapes", statement="s", paper="Figure 1", passed=None,
              measured="m", folder=tmp_path)


def test_a_measurement_carries_its_verdict_and_detectable_effect(tmp_path, monkeypatch):
    monkeypatch.setenv("BEA_PROFILE", "default")
    _claim(tmp_path, passed=None, verdict=Verdict.INCONCLUSIVE, measured="0.1 [-2, 2]",
           detectable="±2.1")
    (record,) = read_claims(tmp_path).values()
    assert record.status == ClaimStatus.MEASURED and failed({record.id: record}) == []
    line = claim_markdown(record)
    assert line.startswith("*Measured") and "✓" not in line and "inconclusive" in line
    assert "smallest detectable effect ±2.1" in line


def test_claim_counts_count_every_status_and_the_consistency_checks(tmp_path, monkeypatch):
    monkeypatch.setenv("BEA_PROFILE", "smoke")
    _claim(tmp_path, id="minibatch/a")
    _claim(tmp_path, id="minibatch/b", passed=False)
    _claim(tmp_path, id="minibatch/c", passed=None, verdict=Verdict.INCONCLUSIVE)
    _claim(tmp_path, id="minibatch/d", needs="default")
    _claim(tmp_path, id="minibatch/e", consistency=True)
    assert claim_counts(read_claims(tmp_path).values()) == {
        "passed": 2, "failed": 1, "measured": 1, "not_checked": 1, "consistency": 1}


def test_a_custom_run_is_recorded_and_said_on_the_line(tmp_path, monkeypatch):
    monkeypatch.setenv("BEA_PROFILE", "default")
    monkeypatch.setenv("BEA_CUSTOM", '{"rho": 0.99, "n_steps": 200}')
    _claim(tmp_path)
    (record,) = read_claims(tmp_path).values()
    assert record.custom == {"rho": 0.99, "n_steps": 200}
    assert "; custom run: n_steps = 200, rho = 0.99):" in claim_markdown(record)  # sorted
    monkeypatch.setenv("BEA_CUSTOM", "[1, 2]")
    with pytest.raises(ValueError, match="BEA_CUSTOM must be a JSON mapping"):
        _claim(tmp_path)


def test_the_books_own_experiment_speaks_of_supported_never_reproduced(tmp_path, monkeypatch):
    from bea_lib.base.vocab import ExperimentVerdict
    monkeypatch.setenv("BEA_PROFILE", "default")
    mech = dict(paper="mechanism", statement="the κ sign flip")
    _claim(tmp_path, id="mechanism/kappa-order", passed=True, **mech)
    _claim(tmp_path, id="mechanism/kappa-sign-flip", passed=None, verdict="supported", **mech)
    claims = read_claims(tmp_path)
    assert claims["mechanism/kappa-order"].verdict == ExperimentVerdict.SUPPORTED
    primary = claims["mechanism/kappa-sign-flip"]
    assert primary.verdict == ExperimentVerdict.SUPPORTED and primary.role == CheckRole.PRIMARY
    assert "; supported" in claim_markdown(primary)
    with pytest.raises(ValueError, match="reproduced"):  # the paper's words are refused here
        _claim(tmp_path, id="mechanism/kappa-sign-flip", passed=None, verdict="reproduced",
               **mech)
    monkeypatch.setenv("BEA_PROFILE", "smoke")
    _claim(tmp_path, id="mechanism/kappa-sign-flip", passed=None, verdict="supported",
           needs="default", **mech)
    assert read_claims(tmp_path)["mechanism/kappa-sign-flip"].verdict == ExperimentVerdict.NOT_RUN

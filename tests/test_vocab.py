"""The vocabularies' mappings from a trend verdict to the words the book prints."""
import pytest

from bea_lib.base.vocab import (ExperimentVerdict, ProxyAnswer, TrendVerdict, Verdict,
                                experiment_verdict, paper_verdict, proxy_answer)


@pytest.mark.parametrize("trend, gated, expected", [
    (TrendVerdict.APPEARS, True, ExperimentVerdict.SUPPORTED),
    (TrendVerdict.OPPOSITE, True, ExperimentVerdict.NOT_SUPPORTED),
    (TrendVerdict.NOT_SEEN, True, ExperimentVerdict.INCONCLUSIVE),
    (TrendVerdict.APPEARS, False, ExperimentVerdict.OUTSIDE_RANGE),
    (TrendVerdict.OPPOSITE, False, ExperimentVerdict.OUTSIDE_RANGE),
    (TrendVerdict.NOT_TESTABLE, False, ExperimentVerdict.NOT_RUN),
])
def test_an_experiment_is_supported_only_inside_its_gate(trend, gated, expected):
    assert experiment_verdict(trend, gated=gated) == expected


@pytest.mark.parametrize("trend, gated, expected", [
    (TrendVerdict.APPEARS, True, Verdict.REPRODUCED),
    (TrendVerdict.OPPOSITE, True, Verdict.CONTRADICTED),
    (TrendVerdict.NOT_SEEN, True, Verdict.INCONCLUSIVE),
    (TrendVerdict.NOT_TESTABLE, True, Verdict.NOT_TESTED),
    (TrendVerdict.APPEARS, False, Verdict.OUTSIDE_RANGE),
    (TrendVerdict.OPPOSITE, False, Verdict.OUTSIDE_RANGE),
])
def test_the_one_mapping_from_a_trend_to_a_paper_verdict(trend, gated, expected):
    assert paper_verdict(trend, gated=gated) == expected


@pytest.mark.parametrize("trend, expected", [
    ("appears", ProxyAnswer.SAME), ("opposite", ProxyAnswer.OPPOSITE),
    ("not seen", ProxyAnswer.NO_TREND), ("not testable", ProxyAnswer.NOT_READ),
])
def test_the_proxy_answer_ignores_the_gate(trend, expected):
    assert proxy_answer(trend) == expected


def test_the_experiments_words_are_not_the_papers():
    assert "reproduced" not in {v.value for v in ExperimentVerdict}
    assert {v.value for v in ProxyAnswer}.isdisjoint({Verdict.REPRODUCED, Verdict.CONTRADICTED})

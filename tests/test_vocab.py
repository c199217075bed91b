"""The vocabularies' mappings from a trend verdict to the words the book prints."""
import pytest

from bea_lib.base.vocab import (ExperimentVerdict, ProxyAnswer, TrendVerdict, experiment_verdict,
                           proxy_answer)


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


@pytest.mark.parametrize("trend, expected", [
    ("appears", ProxyAnswer.SAME), ("opposite", ProxyAnswer.OPPOSITE),
    ("not seen", ProxyAnswer.NO_TREND), ("not testable", ProxyAnswer.NOT_READ),
])
def test_the_proxy_answer_ignores_the_gate(trend, expected):
    assert proxy_answer(trend) == expected


def test_the_experiments_words_are_not_the_papers():
    from bea_lib.base.vocab import Verdict
    assert "reproduced" not in {v.value for v in ExperimentVerdict}
    assert {v.value for v in ProxyAnswer}.isdisjoint({Verdict.REPRODUCED, Verdict.CONTRADICTED})

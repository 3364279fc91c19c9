"""The responder and MCID rules on hand-made edge cases."""

import numpy as np
import pandas as pd
import pytest

from respine_nb import endpoints

NA = pd.NA


def one(series):
    value = series.iloc[0]
    return None if value is NA else bool(value)


@pytest.mark.parametrize(
    "base,value,expected",
    [
        (100, 80, True),  # exactly 20 mm and exactly 20 %
        (50, 30, True),  # 20 mm = 40 %
        (100, 80.1, False),  # 19.9 mm
        (120, 100, False),  # 20 mm but only 16.7 %
        (19, 0, False),  # baseline below 20 mm: 20 mm improvement impossible
        (60, 70, False),  # worse
        (60, None, None),  # missing follow-up: undecidable
        (None, 30, None),  # missing baseline
    ],
)
def test_vas_criterion(base, value, expected):
    assert one(endpoints.vas_criterion([base], [value])) is expected


@pytest.mark.parametrize(
    "base,value,rule,expected",
    [
        (50, 40, "relative", True),  # exactly 20 %
        (50, 40.5, "relative", False),  # 19 %
        (30, 24, "relative", True),  # 6 points = 20 %
        (30, 24, "absolute", False),  # 6 points < 20 points
        (60, 40, "absolute", True),  # exactly 20 points
        (0, 0, "relative", False),  # nothing to improve
    ],
)
def test_odi_criterion(base, value, rule, expected):
    assert one(endpoints.odi_criterion([base], [value], rule=rule)) is expected


def test_odi_rule_is_checked():
    with pytest.raises(ValueError, match="odi rule"):
        endpoints.odi_criterion([40], [20], rule="percent")


@pytest.mark.parametrize(
    "vas,odi,expected",
    [
        ((80, 50), (40, 40), True),  # VAS met, ODI not
        ((80, 75), (40, 30), True),  # ODI met only
        ((80, 75), (40, 39), False),  # neither met
        ((80, 50), (40, None), True),  # one component missing, the other met: responder
        ((80, 75), (40, None), None),  # one missing, the other not met: not evaluable
        ((80, None), (40, None), None),
    ],
)
def test_responder_status(vas, odi, expected):
    rs = endpoints.responder_status([vas[0]], [vas[1]], [odi[0]], [odi[1]])
    assert one(rs["responder"]) is expected


def test_thresholds_are_arguments():
    # 15 mm and 15 % is met under a 15/15 rule and not under the default 20/20 rule
    assert one(endpoints.vas_criterion([100], [85])) is False
    assert one(endpoints.vas_criterion([100], [85], abs_mm=15, rel=0.15)) is True


def test_mcid():
    assert endpoints.mcid("vas_pain", [60, 60, 60, None], [45, 46, None, 10]).tolist() == [True, False, NA, NA]
    assert endpoints.mcid("odi", [40, 40], [30, 31]).tolist() == [True, False]


def test_inputs_not_mutated():
    base = pd.Series([80.0, 60.0], index=[5, 7])
    value = pd.Series([50.0, 55.0], index=[5, 7])
    before = (base.copy(), value.copy())
    endpoints.responder_status(base, value, base, value)
    pd.testing.assert_series_equal(base, before[0])
    pd.testing.assert_series_equal(value, before[1])


def test_array_rules_are_the_series_rules():
    # meets_vas / meets_odi / is_responder on float arrays (NaN = missing), here stacked as
    # (imputation, participant), say what the Series functions say, <NA> read as not met
    rng = np.random.default_rng(0)
    base = rng.integers(0, 101, (2, 3, 200)).astype(float)
    value = base - rng.integers(-30, 60, base.shape) * rng.choice([1, 0.5, 0.1], base.shape)
    base[rng.random(base.shape) < 0.1], value[rng.random(base.shape) < 0.1] = np.nan, np.nan
    (bv, bo), (v, o) = base, value
    for rule in ({}, {"vas_abs_mm": 15, "vas_rel": 0.3, "odi_rule": "absolute", "odi_abs": 10}, {"odi_rel": 0.4}):
        got = endpoints.is_responder(bv, v, bo, o, **rule)
        for i in range(len(bv)):
            rs = endpoints.responder_status(bv[i], v[i], bo[i], o[i], **rule)
            np.testing.assert_array_equal(got[i], rs["responder"].fillna(False).to_numpy(dtype=bool))
            np.testing.assert_array_equal(
                endpoints.meets_vas(bv[i], v[i], rule.get("vas_abs_mm", 20), rule.get("vas_rel", 0.2)),
                rs["vas_met"].fillna(False).to_numpy(dtype=bool),
            )
    with pytest.raises(ValueError, match="odi rule"):
        endpoints.meets_odi(bo, o, rule="percent")

"""Figures: never raise on thin data, error bars never negative, bytes independent of last-bit noise."""

from __future__ import annotations

import io as _io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from respine_nb import config, derive, plots, stats  # noqa: E402


def png(fig) -> bytes:
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=60, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def texts(fig) -> list:
    return [t.get_text() for ax in fig.axes for t in ax.texts + [ax.title, ax.xaxis.label, ax.yaxis.label]] + [
        t.get_text() for ax in fig.axes for t in ax.get_xticklabels() + ax.get_yticklabels()
    ]


def wilson_table(x, n):
    rows = []
    for arm in config.ARMS:
        lo, hi = stats.wilson_ci(x, n)
        rows.append({"measure": "any", "group": arm, "visit_month": 6, "mean": x / n, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def test_error_bars_clipped_when_a_bound_crosses_the_estimate():
    # was: "'yerr' must not contain negative values" (06): a Wilson bound 1e-17 above an estimate of 0
    t = wilson_table(0, 7).assign(ci_low=1e-17)
    plt.close(plots.by_visit(t, {"any": "Either class"}, y="mean", percent=True))
    props = pd.DataFrame(
        {
            "group": list(config.ARMS),
            "estimate": [0.0, 1.0],
            "ci_low": [1e-17, 0.7],
            "ci_high": [0.3, 1 - 1e-16],
            "events": [0, 9],
            "n": [9, 9],
        }
    )
    comp = stats.responder_composition(pd.DataFrame({"ARM": [], "AVAL": [], "CRIT1FL": [], "CRIT2FL": []}))
    plt.close(plots.responders(props, comp, 12))
    lo, hi = plots._err([0.0, 0.5], [1e-17, np.nan], [0.2, 0.6])
    assert list(lo[:1]) == [0.0] and np.isnan(lo[1]) and list(hi) == pytest.approx([0.2, 0.1])


def test_wilson_bounds_exact_at_zero_and_n():
    # R: prop.test(0, 7, correct = FALSE)$conf.int[1] is exactly 0; prop.test(7, 7, ...)$conf.int[2] exactly 1
    assert stats.wilson_ci(0, 7)[0] == 0.0 and stats.wilson_ci(7, 7)[1] == 1.0


def test_stable_rounds_floats_to_7_significant_digits_only():
    df = pd.DataFrame(
        {
            "x": [1.23456789, -0.000123456789, np.nan, 0.0, np.inf],
            "k": [1, 2, 3, 4, 5],
            "f": pd.array([1.000000049, None, 2.5, 3, 4], dtype="Float64"),
            "s": list("abcde"),
        }
    )
    df.attrs["visit_month"] = 6
    got = plots.stable(df)
    assert list(got["x"][:2]) == [1.234568, -0.0001234568] and np.isnan(got["x"][2]) and got["x"][4] == np.inf
    assert got["f"].dtype == "Float64" and got["f"][0] == 1.0 and got["f"].isna()[1]
    assert got["k"].tolist() == [1, 2, 3, 4, 5] and got.attrs == {"visit_month": 6}
    assert df["x"][0] == 1.23456789  # input untouched
    assert plots.stable(None) is None and plots.stable(2.000000001) == 2.0


def test_figure_bytes_do_not_depend_on_last_bit_noise(default_tables):
    eff = derive.adeff(default_tables)
    traj = stats.trajectories(eff)
    noisy = traj.assign(**{c: traj[c] * (1 + 1e-12) for c in ("mean", "ci_low", "ci_high")})
    panels = {m: m for m in config.MEASURE_PARAMS}
    assert png(plots.by_visit(traj, panels)) == png(plots.by_visit(noisy, panels))


def test_tipping_heatmap_axes_are_counts(default_tables):
    ad = derive.derive_all(default_tables)
    tp = stats.tipping_point(derive.responders(ad["adsl"], ad["adeff"], 12))
    fig = plots.tipping_heatmap(tp)
    labels = texts(fig)
    assert "Sham: non-evaluable participants assumed to respond (of 11)" in labels
    assert (
        "BM-MSC: assumed responders (of 5)" in labels
        and "11" in labels
        and "5" in labels
        and not any("%" in t for t in labels[-20:])
    )
    plt.close(fig)


@pytest.mark.parametrize("rule,title,chosen", [("relative", "ODI >= 20%", 0.2), ("absolute", "ODI >= 20 points", 20)])
def test_threshold_heatmaps_label_the_rule_and_outline_the_choice(default_tables, rule, title, chosen):
    grid = stats.threshold_grid(derive.wide_outcomes(derive.adeff(default_tables)), odi_rule=rule)
    rule_dict = dict(vas_abs_mm=20, vas_rel=0.2, odi_rel=0.2, odi_rule=rule)
    for how in ((20, 0.2, chosen), rule_dict):
        fig = plots.threshold_heatmaps(grid, how)
        assert title in texts(fig)
        outlined = [
            ax
            for ax in fig.axes
            if any(isinstance(p, plt.Rectangle) and p.get_edgecolor()[:3] == (0, 0, 0) and not p.get_fill() for p in ax.patches)
        ]
        assert len(outlined) == 1 and outlined[0].get_title() == title
        plt.close(fig)


def test_empty_inputs_draw_no_data_panels():
    empty_tte = pd.DataFrame(columns=["USUBJID", "ARM", "AVAL", "CNSR", "INTLO", "INTHI"])
    for fig in (
        plots.km_response(empty_tte, None),
        plots.status_grid(pd.DataFrame({"USUBJID": ["a"], "ARM": ["BM-MSC"], "AVISITN": [12], "STATUS": ["responder"]})),
        plots.by_visit(wilson_table(1, 2).assign(mean=np.nan), {"any": "x"}),
        plots.baseline_distributions(pd.DataFrame({"ARM": ["Sham"], "v": [np.nan]}), {"v": "V"}),
    ):
        assert "no data" in texts(fig)
        plt.close(fig)

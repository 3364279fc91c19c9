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


# --------------------------------------------------------------------------- smoke test: every figure on default and edge data


def _colour(artist):
    import matplotlib.colors as mcolors

    for get in ("get_color", "get_markerfacecolor", "get_facecolor", "get_edgecolor"):
        if hasattr(artist, get):
            c = getattr(artist, get)()
            c = c[0] if isinstance(c, np.ndarray) and c.ndim == 2 and len(c) else c
            if c is not None and not (isinstance(c, str) and c == "none") and len(np.atleast_1d(c)):
                return mcolors.to_hex(c)
    return None


def _figures(t):
    d = derive.derive_all(t)
    adsl, adeff = d["adsl"], d["adeff"]
    flow = stats.consort_flow(adsl, d["adds"], 12, adeff=adeff, admri=d["admri"], adtte=d["adtte"])
    yield "consort", plots.consort(flow)
    yield "completeness", plots.completeness_heatmap(stats.follow_up_completeness(adeff))
    yield "baseline", plots.baseline_distributions(adsl, {"BVAS": "VAS (mm)", "BODI": "ODI (%)"})
    yield "tipping", plots.tipping_heatmap(stats.tipping_point(derive.responders(adsl, adeff, 12)))
    yield "t2_by_grade", plots.t2_by_grade(derive.mri_by_visit(d["admri"], 0))
    yield "ae_onset", plots.ae_onset(d["adae"])
    yield "by_visit", plots.by_visit(stats.trajectories(adeff), {m: m for m in config.MEASURE_PARAMS})


@pytest.mark.parametrize("shape", [(), ("no_ae", "sham_not_evaluable"), ("eight_per_arm", "no_month24", "no_optional_tables")])
def test_every_figure_smoke(default_tables, shape):
    from matplotlib.figure import Figure
    from scenarios import apply

    t = apply(default_tables, list(shape)) if shape else default_tables
    for name, fig in _figures(t):
        assert isinstance(fig, Figure), name
        for ax in fig.axes:
            if (
                not ax.axison
                or "no data" in [x.get_text() for x in ax.texts]
                or not (ax.get_xticks().size or ax.get_yticks().size)
            ):
                continue
            if ax.get_label() == "<colorbar>":
                continue
            assert ax.get_xlabel() or ax.get_ylabel() or ax.get_title(), (name, "axis without a label")
            leg = ax.get_legend()
            if leg is None:
                continue
            drawn = {_colour(a) for a in [*ax.lines, *ax.collections, *ax.patches]} - {None}
            for h, label in zip(leg.legend_handles, [x.get_text() for x in leg.get_texts()]):
                assert label, name
                if label in config.ARMS:
                    assert _colour(h) in drawn, (name, label)
        plt.close(fig)


def test_consort_draws_the_follow_up_split(default_tables):
    d = derive.derive_all(default_tables)  # tests/data/cohort_v1
    flow = stats.consort_flow(d["adsl"], d["adds"], 12, adeff=d["adeff"], admri=d["admri"], adtte=d["adtte"])
    fig = plots.consort(flow)
    text = "\n".join(texts(fig))
    assert "Discontinued before month 12 (n\u00a0=\u00a02)" in text and "Discontinued between month 12 and 24" in text
    assert "Followed up to month 24 (n\u00a0=\u00a052)" in text and "responders, month 12 (n\u00a0=\u00a053)" in text
    assert "(n\n" not in text and "n\n =" not in text
    plt.close(fig)
    today = plots.consort(flow[~flow["stage"].isin(plots.CONSORT_SPLIT_STAGES)])  # the flow without the split
    assert "Month 24" not in texts(today) and any(t.startswith("Discontinued (n") for t in texts(today))
    plt.close(today)


def test_forest_favours_labels_and_fitted_axis():
    sub = pd.DataFrame(
        {
            "subgroup": ["Sex", "Sex"],
            "level": ["F", "M"],
            "estimate": [0.05, 0.1],
            "ci_low": [-0.2, -0.1],
            "ci_high": [0.3, 0.32],
            "p_interaction": [0.9, 0.9],
            "events_msc": [1, 2],
            "n_msc": [3, 4],
            "events_sham": [1, 2],
            "n_sham": [3, 4],
        }
    )
    fig = plots.forest(sub, pd.Series({"estimate": 0.05, "ci_low": -0.1, "ci_high": 0.2}))
    ax = fig.axes[0]
    assert ax.get_xlim() == (-40.0, 40.0)
    assert any("favours BM-MSC" in t for t in texts(fig)) and any("favours sham" in t for t in texts(fig))
    plt.close(fig)


def test_delta_adjusted_figure():
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    from respine_nb import plots

    rows = pd.DataFrame(
        {
            "delta": [0, 5, 10, 15, 20],
            "estimate": [0.06, 0.03, 0.0, -0.04, -0.08],
            "ci_low": [-0.1, -0.13, -0.16, -0.2, -0.16],
            "ci_high": [0.2, 0.19, 0.16, 0.12, -0.01],
            "p_value": [0.5, 0.7, 1.0, 0.6, 0.04],
        }
    )
    fig = plots.delta_adjusted(rows)
    ax = fig.axes[0]
    assert ax.get_xlabel() and ax.get_ylabel()
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["p < 0.05", "p \u2265 0.05"]
    plt.close(fig)
    empty = plots.delta_adjusted(rows.assign(estimate=np.nan))
    assert empty.axes[0].get_legend() is None
    plt.close(empty)


_RC_AFTER = """
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
plt.rcParams["figure.facecolor"] = (1, 1, 1, 0)  # what the inline backend sets: the theme must override it
if sys.argv[1] == "seaborn":
    import seaborn as sns
    from respine_nb import plots
    sns.set_theme(context="paper", style="ticks", palette=plots.OKABE_ITO, font="DejaVu Sans")
    cycle = plt.rcParams["axes.prop_cycle"]
    plots.SEABORN_PAPER_TICKS = {}  # the theme's own settings only, on top of seaborn's
    plots.theme()
    plt.rcParams["axes.prop_cycle"] = cycle  # seaborn's colour cycle, to compare with ours
else:
    from respine_nb import plots
    plots.theme()
print(json.dumps({k: repr(v) for k, v in plt.rcParams.items()}))
print("seaborn" in sys.modules)
"""


def test_theme_is_seaborns_paper_ticks_without_importing_it():
    """The theme writes out seaborn's settings (so that a notebook without a heatmap does not import
    seaborn, issue 15): every rcParam equals what sns.set_theme gives, the colour map aside."""
    import json
    import subprocess
    import sys

    def after(how):
        out = subprocess.run([sys.executable, "-c", _RC_AFTER, how], capture_output=True, text=True, check=True)
        assert not out.stderr, out.stderr
        rc, imported = out.stdout.splitlines()
        return json.loads(rc), imported == "True"

    (ours, ours_imported), (theirs, _) = after("ours"), after("seaborn")
    assert not ours_imported
    differ = {k: (ours[k], theirs[k]) for k in theirs if ours[k] != theirs[k]}
    assert differ == {"image.cmap": ("'viridis'", "'rocket'")}


def embedded_fonts(pdf: bytes) -> list:
    """The TrueType fonts embedded in a PDF (FontFile2 streams), read back with fontTools."""
    from fontTools.ttLib import TTFont
    from pypdf import PdfReader

    fonts = []
    for page in PdfReader(_io.BytesIO(pdf)).pages:
        for font in page["/Resources"]["/Font"].values():
            for descendant in font.get_object().get("/DescendantFonts", []):
                stream = descendant.get_object()["/FontDescriptor"]["/FontFile2"].get_object()
                fonts.append(TTFont(_io.BytesIO(stream.get_data())))
    return fonts


def test_pdf_fonts_leave_out_the_tables_a_pdf_never_reads(tmp_path):
    """save() embeds each font without its layout and math tables (PDF_UNUSED_FONT_TABLES), and
    restores fontTools' defaults afterwards; a ligature ("fi"), a minus sign and a bold title make
    two subsets of the regular font and one of the bold. A plain savefig keeps the tables: if a new
    fontTools or matplotlib bypassed the default that save() extends, the first check fails."""
    from fontTools import subset

    plots.theme()
    default = list(subset.Options._drop_tables_default)

    def figure():
        fig, ax = plt.subplots(figsize=(2, 1.5))
        ax.plot([-1, 1], [0, 1])
        ax.set_title("Modified flow", fontweight="bold")
        ax.set_xlabel("VAS change (mm, −10 ≥ fine)")
        return fig

    written = plots.save(figure(), "fonts", tmp_path)
    fonts = embedded_fonts((tmp_path / "fonts.pdf").read_bytes())
    assert len(fonts) >= 2
    for font in fonts:
        assert not set(plots.PDF_UNUSED_FONT_TABLES) & set(font.keys()), sorted(font.keys())
        assert {"glyf", "loca", "hmtx", "cmap", "head"} <= set(font.keys())
    assert subset.Options._drop_tables_default == default
    assert [p.suffix for p in written] == [".png", ".pdf"]

    plain = _io.BytesIO()
    figure().savefig(plain, format="pdf")  # matplotlib's own subsets keep them (DejaVu Sans has all five)
    plt.close("all")
    assert all({"GSUB", "GPOS"} <= set(font.keys()) for font in embedded_fonts(plain.getvalue()))


MONTH = "Month 12: −5 mm"


# the last: a box 873.9999999999999 pixels wide at 300 dpi, which matplotlib draws 874 wide
@pytest.mark.parametrize(
    "size,title",
    [
        ((3.5, 2.4), MONTH),
        ((7.2, 2.6), MONTH),
        ((2.33, 1.71), MONTH),
        ((5.05, 3.97), MONTH),
        ((2.240587183322612, 2.9403336589225963), "x" * 37),
    ],
)
def test_png_is_savefigs_and_its_pixels_the_inline_figure(tmp_path, size, title):
    """save() writes the PNG from the raw canvas: the same bytes as savefig's PNG (sizes in odd
    inches, whose pixel counts round down, or up when a rounding error short of a whole pixel),
    and the figure shown inline, made from the pixels, is the one made from the file."""
    plots.theme()
    fig, ax = plt.subplots(figsize=size)
    ax.plot([0, 1, 2], [2, 0, 1], label="BM-MSC")
    ax.set_title(title)
    ax.legend()
    bbox = plots.tight_bbox(fig)
    expected = _io.BytesIO()
    fig.savefig(expected, format="png", dpi=plots.PNG_DPI, metadata=plots._PNG_META, bbox_inches=bbox)
    png, pixels = plots._png(fig, bbox)
    plt.close(fig)
    assert png == expected.getvalue()
    assert pixels.shape[2] == 4 and abs(pixels.shape[1] - bbox.width * plots.PNG_DPI) < 1
    assert plots.inline_png(pixels, 3) == plots.inline_png(png, 3)


def test_heatmaps_are_not_drawn_while_built(default_tables, monkeypatch):
    """seaborn's heatmap draws the whole figure to check its tick labels; the threshold and tipping
    heatmaps set their own labels, so they are built without a draw (a draw of every panel so far,
    each time), and keep their canvas."""
    from matplotlib.figure import Figure

    ad = derive.derive_all(default_tables)
    grid = stats.threshold_grid(derive.wide_outcomes(ad["adeff"]))
    tp = stats.tipping_point(derive.responders(ad["adsl"], ad["adeff"], 12))
    draws = []
    draw = Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda self, renderer: draws.append(self) or draw(self, renderer))
    canvases = []
    subplots = plt.subplots
    monkeypatch.setattr(plt, "subplots", lambda *a, **k: canvases.append((r := subplots(*a, **k))[0].canvas) or r)
    for fig in (plots.threshold_heatmaps(grid, (20, 0.2, 0.2)), plots.tipping_heatmap(tp)):
        assert fig.canvas is canvases.pop(0)
        plt.close(fig)
    assert draws == []


def test_consort_without_screening_saves_whole_pixels(tmp_path):
    """Regression: the CONSORT diagram of the committed cohort without a screening log (an optional
    table), for every number of discontinuation reasons, fills its figure; its tight box is a
    rounding error short of a whole pixel count (1787.9999999999998 pixels), which matplotlib draws
    as the whole count: save() writes it, the same PNG as savefig."""
    from respine_nb import io

    d = derive.derive_all(io.load_dataset(config.SYNTHETIC_DIR).tables)
    flow = stats.consort_flow(d["adsl"], d["adds"], 12)
    flow = flow[~flow["stage"].isin(["screened", "excluded"])]
    reasons = flow.index[(flow["stage"] == "discontinued") & (flow["reason"] != "")]
    plots.theme()
    for k, fig in enumerate(plots.consort(flow.drop(reasons[keep:])) for keep in range(len(reasons) + 1)):
        bbox = plots.tight_bbox(fig)
        expected = _io.BytesIO()
        fig.savefig(expected, format="png", dpi=plots.PNG_DPI, metadata=plots._PNG_META, bbox_inches=bbox)
        written = plots.save(fig, f"f{k}", tmp_path)
        assert written[0].read_bytes() == expected.getvalue()
    plt.close("all")

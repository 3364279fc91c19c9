"""One figure theme, one function per figure kind, reproducible saving.

- :func:`theme` sets a colour-blind-safe, journal-sized style (Okabe-Ito palette,
  one colour per arm everywhere: :data:`ARM_COLORS`).
- figure functions take tidy frames and return a ``matplotlib.figure.Figure``;
  they never read or write files.
- :func:`save` writes PNG (300 dpi) and PDF with fixed metadata, so that the
  same figure gives the same bytes on every run.
"""
from __future__ import annotations

from pathlib import Path

import io as _io
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from . import config
from .io import atomic_write_bytes

# Okabe-Ito: safe for the common colour-vision deficiencies and in greyscale.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
ARM_COLORS = {"BM-MSC": "#0072B2", "Sham": "#E69F00"}
ARM_MARKERS = {"BM-MSC": "o", "Sham": "s"}
SINGLE_COLUMN_IN = 3.5  # journal single column width, inches
DOUBLE_COLUMN_IN = 7.2
PNG_DPI = 300
_PNG_META = {"Software": None}
_PDF_META = {"Creator": None, "Producer": None, "CreationDate": None, "ModDate": None}


def theme() -> None:
    """Apply the project theme (idempotent)."""
    sns.set_theme(context="paper", style="ticks", palette=OKABE_ITO, font="DejaVu Sans")
    plt.rcParams.update({
        "figure.dpi": 100,
        "savefig.dpi": PNG_DPI,
        "font.size": 8,
        "axes.titlesize": 9,
        "axes.labelsize": 8,
        "xtick.labelsize": 7,
        "ytick.labelsize": 7,
        "legend.fontsize": 7,
        "legend.frameon": False,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "pdf.fonttype": 42,  # editable text in the PDF
        "svg.hashsalt": "respine",
        "path.simplify": True,
    })


def save(fig, name: str, folder) -> list[Path]:
    """Write ``fig`` as ``<folder>/<name>.png`` (300 dpi) and ``.pdf``, atomically, reproducibly.

    Returns
    -------
    list of Path
        The two files written.
    """
    written = []
    for ext, meta in (("png", _PNG_META), ("pdf", _PDF_META)):
        buf = _io.BytesIO()
        fig.savefig(buf, format=ext, dpi=PNG_DPI, metadata=meta, bbox_inches="tight")
        written.append(atomic_write_bytes(Path(folder) / f"{name}.{ext}", buf.getvalue()))
    return written


def jitter_points(ax, data: pd.DataFrame, x: str, y: str, order: list, width: float = 0.15, seed: int = 1):
    """Points jittered around categorical positions, with a fixed seed (seaborn's strip
    plot draws its jitter from the global NumPy state, which would change the bytes)."""
    rng = np.random.default_rng(seed)
    for pos, level in enumerate(order):
        vals = data.loc[data[x] == level, y].to_numpy(dtype=float)
        colour = ARM_COLORS.get(level, "0.3")
        ax.scatter(pos + rng.uniform(-width, width, len(vals)), vals, s=5, color=colour, alpha=0.8,
                   linewidths=0, zorder=3)


def _arm_legend(ax, **kw):
    handles = [plt.Line2D([], [], color=ARM_COLORS[a], marker=ARM_MARKERS[a], lw=1.5, label=a) for a in config.ARMS]
    ax.legend(handles=handles, **kw)


# --------------------------------------------------------------------------- cohort


def _flow_dict(flow: pd.DataFrame) -> dict:
    def total(stage, group="all"):
        hit = flow[(flow["stage"] == stage) & (flow["group"] == group) & (flow["reason"] == "")]
        return int(hit["n"].iloc[0]) if len(hit) else None

    def reasons(stage, group):
        hit = flow[(flow["stage"] == stage) & (flow["group"] == group) & (flow["reason"] != "")]
        return list(zip(hit["reason"], hit["n"].astype(int)))

    return {
        "screened": total("screened"), "excluded": total("excluded"), "exclusions": reasons("excluded", "all"),
        "randomized": total("randomized"), "visit_month": flow.attrs.get("visit_month", config.PRIMARY_VISIT),
        "arms": {arm: {"randomized": total("allocated", arm), "treated": total("treated", arm),
                       "discontinued": total("discontinued", arm),
                       "discontinued_reasons": reasons("discontinued", arm),
                       "evaluable": total("analysed", arm), "not_evaluable": total("not_evaluable", arm),
                       "not_evaluable_reasons": reasons("not_evaluable", arm)}
                 for arm in config.ARMS},
    }


def consort(flow_table: pd.DataFrame):
    """CONSORT 2010 flow diagram from the counts of :func:`respine_nb.stats.consort_flow`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    flow = _flow_dict(flow_table)
    has_screening = flow.get("screened") is not None
    fig = plt.figure(figsize=(DOUBLE_COLUMN_IN, 7.4 if has_screening else 6.0))
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.axis("off")
    box = dict(boxstyle="square,pad=0.5", facecolor="white", edgecolor="black", linewidth=0.8)
    kw = dict(ha="center", va="center", fontsize=7.5, bbox=box, multialignment="left")
    arrow = dict(arrowstyle="-|>", color="black", linewidth=0.8, shrinkA=0, shrinkB=0)

    def arrow_(x0, y0, x1, y1):
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops=arrow)

    y = 95
    if has_screening:
        ax.text(50, y, f"Assessed for eligibility (n = {flow['screened']})", **kw)
        lines = [f"Excluded (n = {flow['excluded']})"] + [
            textwrap.fill(f"{r} (n = {k})", 48, initial_indent="  ", subsequent_indent="    ")
            for r, k in flow["exclusions"]]
        ax.text(58, y - 10, "\n".join(lines), ha="left", va="center", fontsize=6.5, bbox=box)
        ax.plot([50, 50], [y - 3, y - 17], color="black", lw=0.8)
        arrow_(50, y - 10, 57, y - 10)
        arrow_(50, y - 17, 50, y - 20)
        y -= 23
    ax.text(50, y, f"Randomised (n = {flow['randomized']})", **kw)
    xs = {"BM-MSC": 25, "Sham": 75}
    ax.plot([25, 75], [y - 5, y - 5], color="black", lw=0.8)
    ax.plot([50, 50], [y - 3, y - 5], color="black", lw=0.8)
    labels = [("Allocation", y - 13), ("Follow-up", y - 33), ("Analysis", y - 55)]
    for text, yy in labels:
        ax.text(50, yy, text, ha="center", va="center", fontsize=7.5, fontweight="bold",
                bbox=dict(boxstyle="round,pad=0.3", facecolor="#DDEEFF", edgecolor="none"))
    for arm, x in xs.items():
        a = flow["arms"][arm]
        arrow_(x, y - 5, x, y - 8)
        ax.text(x, y - 13, f"Allocated to {arm} (n = {a['randomized']})\n"
                f"  Received allocated intervention (n = {a['treated']})\n"
                f"  Did not receive it (n = {a['randomized'] - a['treated']})", **kw)
        disc = "\n".join(f"  {r} (n = {k})" for r, k in a["discontinued_reasons"]) or "  none"
        ax.text(x, y - 33, f"Discontinued (n = {a['discontinued']})\n{disc}", **kw)
        why = "".join(f"\n    {r} (n = {k})" for r, k in a["not_evaluable_reasons"])
        ax.text(x, y - 55, f"Analysed at month {flow['visit_month']} (n = {a['evaluable']})\n"
                f"  Not evaluable (n = {a['not_evaluable']}){why}", **kw)
        arrow_(x, y - 18.5, x, y - 26.5)
        arrow_(x, y - 39.5, x, y - 49.5)
    return fig


def completeness_heatmap(table: pd.DataFrame):
    """Heatmap of the share of participants with an assessment, by arm (rows) and visit (columns).

    ``table`` is the output of :func:`respine_nb.stats.follow_up_completeness`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    pct = table.pivot(index="arm", columns="visit_month", values="proportion").reindex(list(config.ARMS))
    counts = table.pivot(index="arm", columns="visit_month", values="n_observed").reindex(list(config.ARMS))
    total = table.pivot(index="arm", columns="visit_month", values="n_randomized").reindex(list(config.ARMS))
    annot = counts.astype(int).astype(str) + "/" + total.astype(int).astype(str)
    fig, ax = plt.subplots(figsize=(DOUBLE_COLUMN_IN * 0.7, 1.8))
    sns.heatmap(pct * 100, annot=annot, fmt="", vmin=50, vmax=100, cmap="Blues", cbar_kws={"label": "% observed"},
                linewidths=0.5, ax=ax)
    ax.set_xlabel("Visit (month)")
    ax.set_ylabel("")
    ax.set_title("Outcome assessments observed (VAS or ODI present)")
    return fig


def baseline_distributions(adsl: pd.DataFrame, variables: dict):
    """One panel per baseline variable: box plot and points by arm.

    Parameters
    ----------
    adsl : DataFrame
        Subject-level data with an ``arm`` column.
    variables : dict
        Column -> axis label.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = plt.subplots(1, len(variables), figsize=(DOUBLE_COLUMN_IN, 2.4))
    for ax, (col, label) in zip(np.atleast_1d(axes), variables.items()):
        data = adsl[["arm", col]].dropna().astype({col: float})
        sns.boxplot(data=data, x="arm", y=col, hue="arm", order=list(config.ARMS), palette=ARM_COLORS,
                    width=0.5, fliersize=0, boxprops={"alpha": 0.35}, ax=ax, legend=False)
        jitter_points(ax, data, "arm", col, list(config.ARMS))
        ax.set_xlabel("")
        ax.set_ylabel(label)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- primary endpoint


def responders(props: pd.DataFrame, composition: pd.DataFrame, visit_month: int):
    """Left: responder proportion with its CI per arm; right: which criterion made the responders.

    ``props`` has ``group``, ``estimate``, ``ci_low``, ``ci_high``, ``events``, ``n``;
    ``composition`` is :func:`respine_nb.stats.responder_composition`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(DOUBLE_COLUMN_IN, 2.8), gridspec_kw={"width_ratios": [1, 1.3]})
    for i, arm in enumerate(config.ARMS):
        r = props[props["group"] == arm].iloc[0]
        a1.bar(i, r["estimate"] * 100, color=ARM_COLORS[arm], width=0.6, alpha=0.85)
        a1.errorbar(i, r["estimate"] * 100, yerr=[[100 * (r["estimate"] - r["ci_low"])], [100 * (r["ci_high"] - r["estimate"])]],
                    color="black", capsize=4, lw=1)
        a1.text(i, 3, f"{int(r['events'])}/{int(r['n'])}", ha="center", va="bottom", color="white", fontsize=8)
    a1.set_xticks(range(len(config.ARMS)), config.ARMS)
    a1.set_ylim(0, 100)
    a1.set_ylabel(f"Responders at month {visit_month} (%)")
    a1.set_title("Responder proportion (95 % Wilson CI)")
    shades = {"both": 1.0, "VAS only": 0.65, "ODI only": 0.35}
    for i, arm in enumerate(config.ARMS):
        bottom = 0.0
        for comp in ("both", "VAS only", "ODI only"):
            v = composition[(composition["group"] == arm) & (composition["component"] == comp)]["proportion"].iloc[0] * 100
            a2.bar(i, v, bottom=bottom, color=ARM_COLORS[arm], alpha=shades[comp], width=0.6, edgecolor="white",
                   label=comp if i == 0 else None)
            if v >= 4:
                a2.text(i, bottom + v / 2, comp, ha="center", va="center", fontsize=6.5)
            bottom += v
    a2.set_xticks(range(len(config.ARMS)), config.ARMS)
    a2.set_ylim(0, 100)
    a2.set_ylabel("% of evaluable participants")
    a2.set_title("Criterion met: VAS, ODI or both")
    fig.tight_layout()
    return fig


def tipping_heatmap(tp: pd.DataFrame, observed: tuple | None = None):
    """Heatmap of the p-value over assumed responder proportions among the non-evaluable.

    Cells with p < 0.05 are outlined; the annotation is the risk difference (percentage points).

    Returns
    -------
    matplotlib.figure.Figure
    """
    p = tp.pivot(index="assumed_msc", columns="assumed_sham", values="p_value").sort_index(ascending=False)
    d = tp.pivot(index="assumed_msc", columns="assumed_sham", values="estimate").sort_index(ascending=False)
    fig, ax = plt.subplots(figsize=(DOUBLE_COLUMN_IN * 0.75, 4.2))
    sns.heatmap(p, cmap="viridis_r", vmin=0, vmax=1, annot=(d * 100).round(0).astype(int), fmt="d",
                annot_kws={"fontsize": 5.5}, cbar_kws={"label": "p (Yates chi-square)"}, linewidths=0.3, ax=ax)
    sig = tp.pivot(index="assumed_msc", columns="assumed_sham", values="significant").sort_index(ascending=False)
    for (i, j), s in np.ndenumerate(sig.to_numpy()):
        if s:
            ax.add_patch(plt.Rectangle((j, i), 1, 1, fill=False, edgecolor="#D55E00", lw=1.5))
    ax.set_xticklabels([f"{v:.0%}" for v in p.columns], rotation=0)
    ax.set_yticklabels([f"{v:.0%}" for v in p.index], rotation=0)
    ax.set_xlabel("Assumed responders among non-evaluable, sham")
    ax.set_ylabel("... BM-MSC")
    ax.set_title("Tipping point: difference in % points (cells); red outline: p < 0.05")
    return fig


def threshold_heatmaps(grid: pd.DataFrame, chosen: tuple):
    """One heatmap of the risk difference per ODI threshold, VAS thresholds on the axes.

    ``chosen`` = (vas_abs_mm, vas_rel, odi_rel) of the analysis, outlined.

    Returns
    -------
    matplotlib.figure.Figure
    """
    odis = sorted(grid["odi_rel"].unique())
    fig, axes = plt.subplots(1, len(odis), figsize=(DOUBLE_COLUMN_IN, 2.6), sharey=True)
    lim = max(0.05, float(np.nanmax(np.abs(grid["estimate"]))))
    for k, (ax, o) in enumerate(zip(np.atleast_1d(axes), odis)):
        g = grid[grid["odi_rel"] == o].pivot(index="vas_abs_mm", columns="vas_rel", values="estimate").sort_index(ascending=False)
        sns.heatmap(g * 100, cmap="RdBu_r", vmin=-lim * 100, vmax=lim * 100, center=0, ax=ax,
                    annot=(g * 100).round(0).astype(int), fmt="d", annot_kws={"fontsize": 5},
                    cbar=k == len(odis) - 1, cbar_kws={"label": "BM-MSC minus sham (% points)"})
        ax.set_xticklabels([f"{v:.0%}" for v in g.columns], rotation=90)
        ax.set_title(f"ODI >= {o:.0%}")
        ax.set_xlabel("VAS relative")
        ax.set_ylabel("VAS absolute (mm)" if k == 0 else "")
        if np.isclose(o, chosen[2]):
            i = list(g.index).index(chosen[0]) if chosen[0] in list(g.index) else None
            j = [np.isclose(c, chosen[1]) for c in g.columns].index(True) if any(np.isclose(c, chosen[1]) for c in g.columns) else None
            if i is not None and j is not None:
                ax.add_patch(plt.Rectangle((j, i), 1, 1, fill=False, edgecolor="black", lw=1.5))
    fig.tight_layout()
    return fig


def forest(sub: pd.DataFrame, overall: pd.Series | None = None):
    """Forest plot of the risk difference by subgroup level, with interaction p-values.

    Returns
    -------
    matplotlib.figure.Figure
    """
    n = len(sub) + (2 if overall is not None else 0) + sub["subgroup"].nunique()
    fig, ax = plt.subplots(figsize=(DOUBLE_COLUMN_IN, 0.22 * n + 0.8))
    y, labels, ys = 0, [], []
    if overall is not None:
        ax.errorbar(overall["estimate"] * 100, y, xerr=[[100 * (overall["estimate"] - overall["ci_low"])],
                    [100 * (overall["ci_high"] - overall["estimate"])]], fmt="D", color="black", capsize=2, ms=4)
        labels.append("All evaluable")
        ys.append(y)
        y -= 2
    for name, g in sub.groupby("subgroup", sort=False):
        p = g["p_interaction"].iloc[0]
        labels.append(f"{name} (interaction p = {p:.2f})" if np.isfinite(p) else f"{name} (interaction p not estimable)")
        ys.append(y)
        y -= 1
        for _, r in g.iterrows():
            if np.isfinite(r["estimate"]):
                ax.errorbar(r["estimate"] * 100, y, xerr=[[100 * (r["estimate"] - r["ci_low"])],
                            [100 * (r["ci_high"] - r["estimate"])]], fmt="s", color=ARM_COLORS["BM-MSC"], capsize=2, ms=3)
            labels.append(f"    {r['level']}  ({int(r['events_msc'])}/{int(r['n_msc'])} vs {int(r['events_sham'])}/{int(r['n_sham'])})")
            ys.append(y)
            y -= 1
    ax.axvline(0, color="0.4", lw=0.8, ls="--")
    ax.set_yticks(ys, labels)
    ax.set_xlabel("Responders, BM-MSC minus sham (% points, 95 % Newcombe CI)")
    ax.set_xlim(-100, 100)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- secondary endpoints

_DODGE = {"BM-MSC": -0.12, "Sham": 0.12}


def _visit_axis(ax, visits):
    ax.set_xticks(range(len(visits)), [str(v) for v in visits])
    ax.set_xlabel("Month")


def by_visit(table: pd.DataFrame, panels: dict, y: str = "mean", ylabel: str | None = None, ncols: int = 2,
             zero_line: bool = False, percent: bool = False):
    """Mean (or proportion) with CI by arm across visits, one panel per measure.

    Parameters
    ----------
    table : DataFrame
        Columns ``measure``, ``group``, ``visit_month``, ``ci_low``, ``ci_high`` and ``y``.
    panels : dict
        Measure -> panel title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(DOUBLE_COLUMN_IN, 2.3 * nrows), squeeze=False)
    scale = 100 if percent else 1
    for ax, (measure, title) in zip(axes.ravel(), panels.items()):
        d = table[table["measure"] == measure]
        visits = sorted(d["visit_month"].unique())
        pos = {v: i for i, v in enumerate(visits)}
        for arm in config.ARMS:
            a = d[d["group"] == arm].sort_values("visit_month")
            x = np.array([pos[v] for v in a["visit_month"]]) + _DODGE[arm]
            ax.errorbar(x, a[y] * scale, yerr=[(a[y] - a["ci_low"]) * scale, (a["ci_high"] - a[y]) * scale],
                        color=ARM_COLORS[arm], marker=ARM_MARKERS[arm], ms=3.5, lw=1.2, capsize=2, label=arm)
        if zero_line:
            ax.axhline(0, color="0.5", lw=0.7, ls="--")
        _visit_axis(ax, visits)
        ax.set_title(title)
        ax.set_ylabel(ylabel or "")
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    _arm_legend(axes.ravel()[0], loc="best")
    fig.tight_layout()
    return fig


def spaghetti(adeff: pd.DataFrame, measure: str, per_arm: int = 15, seed: int = 1):
    """Individual trajectories of ``measure`` for a random sample of participants per arm.

    Returns
    -------
    matplotlib.figure.Figure
    """
    rng = np.random.default_rng(seed)
    d = adeff[(adeff["measure"] == measure) & adeff["value"].notna()]
    fig, axes = plt.subplots(1, 2, figsize=(DOUBLE_COLUMN_IN, 2.5), sharey=True)
    visits = list(config.VISITS)
    pos = {v: i for i, v in enumerate(visits)}
    for ax, arm in zip(axes, config.ARMS):
        ids = sorted(d.loc[d["arm"] == arm, "subject_id"].unique())
        pick = sorted(rng.choice(ids, size=min(per_arm, len(ids)), replace=False)) if ids else []
        for sid in pick:
            s = d[d["subject_id"] == sid].sort_values("visit_month")
            ax.plot([pos[v] for v in s["visit_month"]], s["value"].astype(float), color=ARM_COLORS[arm], lw=0.7,
                    alpha=0.6, marker="o", ms=1.5)
        _visit_axis(ax, visits)
        ax.set_title(f"{arm}: {len(pick)} participants at random")
    axes[0].set_ylabel(config.MEASURE_LABELS[measure])
    fig.tight_layout()
    return fig


def lsmeans_change(mm: pd.DataFrame, panels: dict):
    """LS-mean change from baseline (95 % CI) by arm over time, one panel per measure (MMRM).

    Returns
    -------
    matplotlib.figure.Figure
    """
    t = mm[mm["term"] == "lsmean"].rename(columns={"estimate": "mean"})
    return by_visit(t, panels, y="mean", ylabel="LS-mean change from baseline", zero_line=True)


# --------------------------------------------------------------------------- MRI


def t2_by_grade(admri: pd.DataFrame, visit_month: int = 0):
    """Box plot and points of T2 by modified Pfirrmann grade.

    Returns
    -------
    matplotlib.figure.Figure
    """
    d = admri[admri["visit_month"] == visit_month].dropna(subset=["t2_np_ms", "pfirrmann_grade"])
    grades = sorted(int(g) for g in d["pfirrmann_grade"].unique())
    data = pd.DataFrame({"grade": d["pfirrmann_grade"].astype(int).astype(str).to_numpy(),
                         "t2": d["t2_np_ms"].astype(float).to_numpy(), "arm": d["arm"].astype(str).to_numpy()})
    fig, ax = plt.subplots(figsize=(SINGLE_COLUMN_IN * 1.3, 2.6))
    sns.boxplot(data=data, x="grade", y="t2", order=[str(g) for g in grades], color="0.85", width=0.5,
                fliersize=0, ax=ax)
    rng = np.random.default_rng(1)
    for i, g in enumerate(grades):
        for arm in config.ARMS:
            vals = data.loc[(data["grade"] == str(g)) & (data["arm"] == arm), "t2"].to_numpy()
            ax.scatter(i + rng.uniform(-0.15, 0.15, len(vals)), vals, s=6, color=ARM_COLORS[arm], alpha=0.8,
                       linewidths=0, zorder=3)
    ax.set_xlabel("Modified Pfirrmann grade (Griffith 2007)")
    ax.set_ylabel("Nucleus pulposus T2 (ms)")
    _arm_legend(ax, loc="upper right")
    fig.tight_layout()
    return fig


def baseline_vs_followup(pairs: pd.DataFrame, visit_month: int, label: str = "T2 (ms)"):
    """Baseline against follow-up per participant, one panel per arm, with the identity line.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = plt.subplots(1, 2, figsize=(DOUBLE_COLUMN_IN * 0.8, 2.8), sharex=True, sharey=True)
    lo = float(np.nanmin(pairs[["baseline", "value"]].to_numpy())) if len(pairs) else 0.0
    hi = float(np.nanmax(pairs[["baseline", "value"]].to_numpy())) if len(pairs) else 1.0
    pad = 0.05 * (hi - lo + 1)
    for ax, arm in zip(axes, config.ARMS):
        d = pairs[pairs["arm"] == arm]
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.5", lw=0.8, ls="--")
        ax.scatter(d["baseline"], d["value"], s=9, color=ARM_COLORS[arm], alpha=0.8, linewidths=0)
        ax.set_title(f"{arm} (n = {len(d)})")
        ax.set_xlabel(f"Baseline {label}")
    axes[0].set_ylabel(f"Month {visit_month} {label}")
    fig.tight_layout()
    return fig


def change_scatter(pairs: pd.DataFrame, adeff: pd.DataFrame, visit_month: int, measures=("vas_pain", "odi")):
    """T2 change against symptom change at the same visit, coloured by arm, one panel per measure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = plt.subplots(1, len(measures), figsize=(DOUBLE_COLUMN_IN, 2.6))
    for ax, m in zip(np.atleast_1d(axes), measures):
        ch = adeff[(adeff["measure"] == m) & (adeff["visit_month"] == visit_month)].set_index("subject_id")["change"]
        d = pairs.assign(symptom=pairs["subject_id"].map(ch).astype(float)).dropna(subset=["symptom"])
        for arm in config.ARMS:
            a = d[d["arm"] == arm]
            ax.scatter(a["change"], a["symptom"], s=9, color=ARM_COLORS[arm], marker=ARM_MARKERS[arm], alpha=0.8,
                       linewidths=0, label=arm)
        ax.axhline(0, color="0.6", lw=0.6)
        ax.axvline(0, color="0.6", lw=0.6)
        ax.set_xlabel(f"T2 change to month {visit_month} (ms)")
        ax.set_ylabel(f"Change in {config.MEASURE_LABELS[m]}")
    _arm_legend(np.atleast_1d(axes)[0], loc="best")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- time to response

STATUS_COLORS = {"responder": "#009E73", "non-responder": "#D55E00", "not evaluable": "#BBBBBB",
                 "discontinued": "#FFFFFF"}


def km_response(adtte: pd.DataFrame, npmle: pd.DataFrame | None = None):
    """Kaplan-Meier cumulative proportion responding by arm (95 % band), number at risk below,
    and the Turnbull NPMLE (interval-censored) as open markers at the visit closing each interval.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from lifelines import KaplanMeierFitter

    fig, ax = plt.subplots(figsize=(DOUBLE_COLUMN_IN * 0.75, 3.6))
    ticks = [0, *config.POST_BASELINE_VISITS]
    for arm in config.ARMS:
        d = adtte[adtte["arm"] == arm]
        kmf = KaplanMeierFitter().fit(d["time"].astype(float), d["event"].astype(bool), label=arm)
        kmf.plot_cumulative_density(ax=ax, ci_show=True, color=ARM_COLORS[arm], lw=1.5, ci_alpha=0.15)
        if npmle is not None:
            t = npmle[(npmle["group"] == arm) & np.isfinite(npmle["upper"])]
            ax.plot(t["upper"], t["cumulative"], ls="none", marker="o", mfc="white", mec=ARM_COLORS[arm], ms=5,
                    label=f"{arm}, Turnbull NPMLE")
    ax.set_xticks(ticks)
    ax.set_xlim(-0.5, max(ticks) + 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("Month")
    ax.set_ylabel("Cumulative proportion responding")
    ax.legend(loc="lower right")
    # number at risk entering each visit (not yet responded, still followed: time >= visit)
    trans = ax.get_xaxis_transform()
    ax.text(-0.5, -0.30, "At risk", transform=trans, ha="right", va="center", fontsize=7, fontweight="bold")
    for k, arm in enumerate(config.ARMS):
        times = adtte.loc[adtte["arm"] == arm, "time"].astype(float).to_numpy()
        y = -0.38 - 0.08 * k
        ax.text(-0.5, y, arm, transform=trans, ha="right", va="center", fontsize=7, color=ARM_COLORS[arm])
        for t in ticks:
            ax.text(t, y, str(int((times >= max(t, 1e-9)).sum())), transform=trans, ha="center", va="center", fontsize=7)
    fig.tight_layout()
    return fig


def status_grid(status: pd.DataFrame):
    """Responder status of every participant at every visit, one panel per arm (a swimmer-style
    grid: rows are participants, sorted by their status sequence).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.colors import ListedColormap

    codes = {s: i for i, s in enumerate(STATUS_COLORS)}
    cmap = ListedColormap(list(STATUS_COLORS.values()))
    visits = sorted(status["visit_month"].unique())
    fig, axes = plt.subplots(1, 2, figsize=(DOUBLE_COLUMN_IN, 4.2))
    for ax, arm in zip(axes, config.ARMS):
        w = status[status["arm"] == arm].pivot(index="subject_id", columns="visit_month", values="status")[visits]
        m = w.map(codes.get).astype(int)
        m = m.sort_values(list(reversed(visits)), kind="mergesort").sort_values(visits, kind="mergesort")
        ax.imshow(m.to_numpy(), aspect="auto", cmap=cmap, vmin=0, vmax=len(codes) - 1, interpolation="nearest")
        ax.set_xticks(range(len(visits)), [str(v) for v in visits])
        ax.set_yticks([])
        ax.set_xlabel("Month")
        ax.set_title(f"{arm} (n = {len(m)})")
        for sp in ax.spines.values():
            sp.set_visible(True)
    handles = [plt.Rectangle((0, 0), 1, 1, facecolor=c, edgecolor="0.6", label=s) for s, c in STATUS_COLORS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


# --------------------------------------------------------------------------- safety and immunology

SEVERITY_MARKERS = {"mild": "o", "moderate": "s", "severe": "^"}


def ae_onset(adae: pd.DataFrame):
    """Onset day of every adverse event by arm (symmetric log scale), marker by severity, filled
    when serious.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = plt.subplots(figsize=(DOUBLE_COLUMN_IN * 0.8, 2.2))
    rng = np.random.default_rng(1)
    ae = adae[adae["saffl"].astype(bool)] if len(adae) else adae
    for i, arm in enumerate(config.ARMS):
        for sev, marker in SEVERITY_MARKERS.items():
            d = ae[(ae["arm"] == arm) & (ae["severity"] == sev)] if len(ae) else ae
            if not len(d):
                continue
            y = i + rng.uniform(-0.25, 0.25, len(d))
            serious = d["serious"].astype(bool).to_numpy()
            ax.scatter(d["onset_day"].astype(float)[~serious], y[~serious], marker=marker, s=12, facecolors="none",
                       edgecolors=ARM_COLORS[arm], linewidths=0.8)
            ax.scatter(d["onset_day"].astype(float)[serious], y[serious], marker=marker, s=16, color=ARM_COLORS[arm])
    ax.set_xscale("symlog", linthresh=7)
    ax.set_xlim(-0.5, 1000)
    ax.set_yticks(range(len(config.ARMS)), config.ARMS)
    ax.set_ylim(-0.6, len(config.ARMS) - 0.4)
    ax.set_xlabel("Onset, days after the procedure (symmetric log scale)")
    handles = [plt.Line2D([], [], marker=m, ls="none", mfc="none", mec="0.3", label=s) for s, m in SEVERITY_MARKERS.items()]
    handles.append(plt.Line2D([], [], marker="o", ls="none", color="0.3", label="serious (filled)"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=4)
    if not len(ae):
        ax.text(0.5, 0.5, "no adverse events", transform=ax.transAxes, ha="center", va="center")
    fig.tight_layout()
    return fig

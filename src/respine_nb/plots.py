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

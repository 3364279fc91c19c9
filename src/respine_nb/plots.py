"""One figure theme, one function per figure kind, reproducible saving.

- :func:`theme` sets a colour-blind-safe, journal-sized style (Okabe-Ito palette,
  one colour per arm everywhere: :data:`ARM_COLORS`).
- figure functions take tidy frames and return a ``matplotlib.figure.Figure``;
  they never read or write files.
- :func:`save` writes PNG (300 dpi) and PDF with fixed metadata, so that the
  same figure gives the same bytes on every run.
"""

from __future__ import annotations

import contextlib
import io as _io
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from cycler import cycler
from matplotlib.colors import to_rgb

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
RASTERIZE_ABOVE = 1000
"""A scatter layer (one ``PathCollection``) of more points than this is drawn in the PDF as one image
at :data:`PNG_DPI` (:func:`save`): the PDF writer spends Python time on every marker (0.5 s for the
11,400 participants of a 100x cohort in one figure) and the file grows with them. The default cohort's
layers (at most a few hundred points) stay vector; the PNG is the same either way."""
PDF_UNUSED_FONT_TABLES = ("GSUB", "GPOS", "GDEF", "MATH", "kern")
"""Tables of a TrueType font that a PDF never reads, left out of the fonts :func:`save` embeds.

A PDF places every glyph itself (matplotlib computes the kerning and writes each position), so
the layout tables (substitutions, positioning, glyph classes, the old kerning table) and the math
table are dead weight in an embedded font: the PDF looks the same, to the pixel, without them.
Keeping them costs more than their bytes: fontTools decodes them to subset them, about 30 ms per
embedded font (two fonts in a figure with a ligature or a bold title), 1.3 s of CPU per run of
the collection."""


# seaborn's "paper" context and "ticks" style with DejaVu Sans, i.e. what
# sns.set_theme(context="paper", style="ticks", palette=OKABE_ITO, font="DejaVu Sans") sets, written
# out so that a notebook without a heatmap does not import seaborn (0.2 s per kernel); a test checks
# it against seaborn itself. ("image.cmap" is left out: every figure here names its colour map.)
SEABORN_PAPER_TICKS = {
    "axes.axisbelow": True,
    "axes.edgecolor": ".15",
    "axes.facecolor": "white",
    "axes.grid": False,
    "axes.labelcolor": ".15",
    "axes.labelsize": 9.600000000000001,
    "axes.linewidth": 1.0,
    "axes.spines.bottom": True,
    "axes.spines.left": True,
    "axes.spines.right": True,
    "axes.spines.top": True,
    "axes.titlesize": 9.600000000000001,
    "figure.facecolor": "white",
    "font.family": "DejaVu Sans",
    "font.sans-serif": ["Arial", "DejaVu Sans", "Liberation Sans", "Bitstream Vera Sans", "sans-serif"],
    "font.size": 9.600000000000001,
    "grid.color": ".8",
    "grid.linestyle": "-",
    "grid.linewidth": 0.8,
    "legend.fontsize": 8.8,
    "legend.title_fontsize": 9.600000000000001,
    "lines.linewidth": 1.2000000000000002,
    "lines.markersize": 4.800000000000001,
    "lines.solid_capstyle": "round",
    "patch.edgecolor": "w",
    "patch.force_edgecolor": True,
    "patch.linewidth": 0.8,
    "text.color": ".15",
    "xtick.bottom": True,
    "xtick.color": ".15",
    "xtick.direction": "out",
    "xtick.labelsize": 8.8,
    "xtick.major.size": 4.800000000000001,
    "xtick.major.width": 1.0,
    "xtick.minor.size": 3.2,
    "xtick.minor.width": 0.8,
    "xtick.top": False,
    "ytick.color": ".15",
    "ytick.direction": "out",
    "ytick.labelsize": 8.8,
    "ytick.left": True,
    "ytick.major.size": 4.800000000000001,
    "ytick.major.width": 1.0,
    "ytick.minor.size": 3.2,
    "ytick.minor.width": 0.8,
    "ytick.right": False,
}


def theme() -> None:
    """Apply the project theme (idempotent)."""
    plt.rcParams.update(SEABORN_PAPER_TICKS)
    plt.rcParams["axes.prop_cycle"] = cycler(color=[to_rgb(c) for c in OKABE_ITO])
    plt.rcParams.update(
        {
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
            # Matplotlib's PDF writer groups characters into fonts of 256 codes when ps.fonttype
            # is 3 (its default), so a figure with a character beyond Latin-1 (the minus sign,
            # an en dash, >=) embedded DejaVu Sans twice, each subset by fontTools (~0.1 s). 42:
            # one font per figure, and editable text in a PostScript file too.
            "ps.fonttype": 42,
            "svg.hashsalt": "respine",
            "path.simplify": True,
        }
    )


def save(fig, name: str, folder) -> list[Path]:
    """Write ``fig`` as ``<folder>/<name>.png`` (300 dpi) and ``.pdf``, atomically, reproducibly.

    In a Jupyter kernel with the inline backend, the figure shown below the cell is the saved
    PNG reduced to the figure's own resolution (:func:`inline_png`), not a third rendering: the
    figure is closed here and shown, as the inline backend would, when the cell ends.

    Returns
    -------
    list of Path
        The two files written.
    """
    engine = fig.get_layout_engine()
    if engine is not None:  # e.g. what fig.tight_layout() leaves: lay out once here, so that
        engine.execute(fig)  # savefig need not draw the figure an extra time per format
        fig.set_layout_engine(None)
    bbox = tight_bbox(fig)
    png, pixels = _png(fig, bbox)
    written = [atomic_write_bytes(Path(folder) / f"{name}.png", png)]
    pdf = _io.BytesIO()
    dense = dense_layers(fig)
    for layer in dense:  # one image each in the PDF (see RASTERIZE_ABOVE), set for that file only
        layer.set_rasterized(True)
    try:
        with _pdf_font_tables_dropped():
            fig.savefig(pdf, format="pdf", dpi=PNG_DPI, metadata=_PDF_META, bbox_inches=bbox)
    finally:
        for layer in dense:
            layer.set_rasterized(False)
    written.append(atomic_write_bytes(Path(folder) / f"{name}.pdf", pdf.getvalue()))
    _show_when_cell_ends(fig, pixels)
    return written


def _png(fig, bbox) -> tuple:
    """The PNG file of ``fig`` at :data:`PNG_DPI` within ``bbox`` (inches), and its pixels.

    The same bytes as ``fig.savefig(format="png", bbox_inches=bbox)``, which draws the figure
    on matplotlib's Agg canvas and writes that canvas with :func:`matplotlib.image.imsave`: here
    the canvas is asked for as raw RGBA (savefig's "rgba" format) and written the same way, so
    that the pixels are at hand for the figure shown in the notebook (:func:`inline_png`)
    without decoding the PNG again (30 ms a figure).

    Returns
    -------
    tuple of (bytes, numpy.ndarray)
        The PNG, and its pixels (height, width, RGBA) as uint8.
    """
    import matplotlib.image

    raw = _io.BytesIO()
    fig.savefig(raw, format="rgba", dpi=PNG_DPI, bbox_inches=bbox)
    # The canvas savefig draws on: the box at the file's resolution in whole pixels, a size within
    # 1e-8 of the next pixel counted as that pixel (FigureCanvasBase.get_width_height: 2.913333...
    # inches at 300 dpi are 873.9999999999999 pixels, drawn as 874).
    width, height = (int(v * PNG_DPI + 1e-8) for v in bbox.size)
    drawn = raw.getbuffer()
    if drawn.nbytes != 4 * width * height:
        raise RuntimeError(f"savefig drew {drawn.nbytes} bytes of RGBA, not {width} x {height} pixels")
    pixels = np.frombuffer(drawn, dtype=np.uint8).reshape(height, width, 4)
    png = _io.BytesIO()
    matplotlib.image.imsave(png, pixels, format="png", origin="upper", dpi=PNG_DPI, metadata=_PNG_META)
    return png.getvalue(), pixels


@contextlib.contextmanager
def _pdf_font_tables_dropped():
    """While it lasts, the fonts that matplotlib's PDF writer subsets with fontTools leave out
    :data:`PDF_UNUSED_FONT_TABLES`.

    Matplotlib builds fontTools' subsetting options itself, from fontTools' defaults, and has no
    setting for the tables to keep; so the default list of tables to drop is extended here and
    restored afterwards. (``tests/test_plots.py`` reads the fonts back out of a saved PDF: if a
    new fontTools or matplotlib no longer goes through this default, the test says so.)
    """
    from fontTools import subset

    default = subset.Options._drop_tables_default
    subset.Options._drop_tables_default = default + [t for t in PDF_UNUSED_FONT_TABLES if t not in default]
    try:
        yield
    finally:
        subset.Options._drop_tables_default = default


def dense_layers(fig, limit: int | None = None) -> list:
    """The scatter layers of ``fig`` with more than ``limit`` points, not rasterized already.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    limit : int, optional
        Default :data:`RASTERIZE_ABOVE` (read at each call).

    Returns
    -------
    list of matplotlib.collections.PathCollection
        In the figure's artist order (empty for every figure of the default cohort).
    """
    from matplotlib.collections import PathCollection

    limit = RASTERIZE_ABOVE if limit is None else limit
    return [c for c in fig.findobj(PathCollection) if c.get_visible() and not c.get_rasterized() and len(c.get_offsets()) > limit]


def tight_bbox(fig):
    """The area ``savefig(bbox_inches="tight")`` keeps, computed once at the PNG resolution.

    Passed to both the PNG and the PDF, it spares savefig laying the figure out again for each
    format (the PNG is the same, byte for byte; the PDF's bounds come from the same layout).

    Returns
    -------
    matplotlib.transforms.Bbox
        In inches, padded by :rc:`savefig.pad_inches`.
    """
    dpi = fig.dpi
    fig.set_dpi(PNG_DPI)
    try:
        bbox = fig.get_tightbbox(fig.canvas.get_renderer())
    finally:
        fig.set_dpi(dpi)
    return bbox.padded(plt.rcParams["savefig.pad_inches"])


def inline_png(png, factor: int) -> bytes:
    """A PNG reduced ``factor`` times in each direction (each pixel the mean of a factor x factor
    block: what a rendering at the lower resolution would show, anti-aliased), deterministic.

    Parameters
    ----------
    png : bytes or numpy.ndarray
        The full-resolution PNG (as :func:`save` writes it), or its pixels (height, width, RGBA).
    factor : int
        E.g. 3 for the 300-dpi file shown at 100 dpi.

    Returns
    -------
    bytes
    """
    from PIL import Image

    if isinstance(png, np.ndarray):
        im = Image.fromarray(np.ascontiguousarray(png))  # (height, width, 4) uint8: RGBA
    else:
        im = Image.open(_io.BytesIO(png))
    with im:
        small = im.reduce(factor) if factor > 1 else im.copy()
    out = _io.BytesIO()
    small.save(out, format="PNG")
    return out.getvalue()


_PENDING: list = []  # figures saved in the running cell, shown when it ends (inline backend only)


def _show_when_cell_ends(fig, pixels: np.ndarray) -> None:
    import matplotlib

    if "inline" not in matplotlib.get_backend():
        return
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return
    if _flush_pending not in shell.events.callbacks["post_execute"]:
        shell.events.register("post_execute", _flush_pending)
    factor = max(1, round(PNG_DPI / fig.dpi))
    _PENDING.append({"image/png": inline_png(pixels, factor), "text/plain": repr(fig)})
    plt.close(fig)  # the inline backend would render it a third time


def _flush_pending() -> None:
    from IPython.display import display

    shown = list(_PENDING)
    _PENDING.clear()
    for bundle in shown:
        display(bundle, raw=True)


def jitter_points(ax, data: pd.DataFrame, x: str, y: str, order: list, width: float = 0.15, seed: int = 1):
    """Points jittered around categorical positions, with a fixed seed (seaborn's strip
    plot draws its jitter from the global NumPy state, which would change the bytes)."""
    rng = np.random.default_rng(seed)
    for pos, level in enumerate(order):
        vals = data.loc[data[x] == level, y].to_numpy(dtype=float)
        colour = ARM_COLORS.get(level, "0.3")
        ax.scatter(pos + rng.uniform(-width, width, len(vals)), vals, s=5, color=colour, alpha=0.8, linewidths=0, zorder=3)


def _arm_legend(ax, **kw):
    handles = [plt.Line2D([], [], color=ARM_COLORS[a], marker=ARM_MARKERS[a], lw=1.5, label=a) for a in config.ARMS]
    ax.legend(handles=handles, **kw)


SIGNIFICANT_DIGITS = 7


def stable(data, digits: int = SIGNIFICANT_DIGITS):
    """A copy of ``data`` with its float values rounded to ``digits`` significant digits.

    Every figure function passes its inputs through this first, so that numbers differing in
    their last bits between processors (BLAS, libm) draw the same picture and the saved PNG/PDF
    bytes do not depend on that noise. Non-float columns, the index and ``attrs`` are kept.

    Parameters
    ----------
    data : DataFrame, Series, float or None
        What a figure draws; anything else is returned as is.

    Returns
    -------
    Same type as ``data``
        Rounded copy (``None`` stays ``None``).
    """
    if isinstance(data, pd.DataFrame):
        out = data.copy()
        for col in out.columns:
            if pd.api.types.is_float_dtype(out[col].dtype):
                out[col] = stable(out[col], digits)
        return out
    if isinstance(data, pd.Series):
        if not pd.api.types.is_float_dtype(data.dtype):
            if data.dtype == object:  # a row of a mixed frame (e.g. the overall estimate of a forest plot)
                return data.map(lambda v: stable(v, digits) if isinstance(v, float) else v)
            return data.copy()
        vals = _round_sig(data.to_numpy(dtype=float, na_value=np.nan), digits)
        return pd.Series(vals, index=data.index, name=data.name).astype(data.dtype)
    if isinstance(data, (float, np.floating)):
        return float(_round_sig(np.array([data], dtype=float), digits)[0])
    return data


def _round_sig(a: np.ndarray, digits: int) -> np.ndarray:
    finite = np.isfinite(a) & (a != 0)
    mag = np.zeros_like(a)
    mag[finite] = np.floor(np.log10(np.abs(a[finite])))
    scale = 10.0 ** (digits - 1 - mag)
    return np.where(finite, np.round(a * scale) / scale, a)


def _no_data(ax, text: str = "no data") -> None:
    """An empty panel: a short centred text, no ticks."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=8, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _err(estimate, low, high, scale: float = 1.0):
    """Error-bar lengths [below, above] from an estimate and its CI, never negative (a Wilson bound may
    sit a rounding error on the wrong side of a 0 or 1 estimate); NaN where unknown."""
    e, lo, hi = (np.asarray(v, dtype=float) * scale for v in (estimate, low, high))
    return [np.clip(e - lo, 0, None), np.clip(hi - e, 0, None)]


def _boxes(ax, groups: list, colors: list, width: float = 0.5, alpha: float = 0.35) -> None:
    """Box plots (median, quartiles, 1.5 IQR whiskers, no fliers) at positions 0..k-1; empty groups skipped."""
    for pos, (vals, colour) in enumerate(zip(groups, colors)):
        vals = np.asarray(vals, dtype=float)
        vals = vals[np.isfinite(vals)]
        if not len(vals):
            continue
        bp = ax.boxplot(
            [vals], positions=[pos], widths=width, orientation="vertical", showfliers=False, patch_artist=True, manage_ticks=False
        )
        for box in bp["boxes"]:
            box.set(facecolor=colour, alpha=alpha, edgecolor="0.25")
        for part in ("whiskers", "caps", "medians"):
            for line in bp[part]:
                line.set(color="0.25", lw=1)


# --------------------------------------------------------------------------- cohort


CONSORT_SPLIT_STAGES = ("discontinued_before", "discontinued_between", "followed_up_last", "analysed_endpoint")
"""Optional stages of the flow table that :func:`consort` draws when present (per arm, ``reason``
empty for the total, one row per reason otherwise):

- ``discontinued_before``: left the study at or before the primary visit (``visit_month``);
- ``discontinued_between``: left after the primary visit, at or before the last visit (month 24);
- ``followed_up_last``: followed up to the last visit (the month-24 box);
- ``analysed_endpoint``: participants analysed, one row per endpoint, ``reason`` = the endpoint's
  label (e.g. "responders, month 24", "VAS MMRM").

Without them the diagram is today's: one follow-up box (``discontinued``) and one analysis box.
"""


def _flow_dict(flow: pd.DataFrame) -> dict:
    def total(stage, group="all"):
        hit = flow[(flow["stage"] == stage) & (flow["group"] == group) & (flow["reason"] == "")]
        return int(hit["n"].iloc[0]) if len(hit) else None

    def reasons(stage, group):
        hit = flow[(flow["stage"] == stage) & (flow["group"] == group) & (flow["reason"] != "")]
        return list(zip(hit["reason"], hit["n"].astype(int)))

    return {
        "screened": total("screened"),
        "excluded": total("excluded"),
        "exclusions": reasons("excluded", "all"),
        "randomized": total("randomized"),
        "visit_month": int(flow["visit_month"].iloc[0]) if "visit_month" in flow and len(flow) else config.PRIMARY_VISIT,
        "split": bool(flow["stage"].isin(CONSORT_SPLIT_STAGES).any()),
        "arms": {
            arm: {
                "randomized": total("allocated", arm),
                "treated": total("treated", arm),
                "discontinued": total("discontinued", arm),
                "discontinued_reasons": reasons("discontinued", arm),
                "evaluable": total("analysed", arm),
                "not_evaluable": total("not_evaluable", arm),
                "not_evaluable_reasons": reasons("not_evaluable", arm),
                "before": total("discontinued_before", arm),
                "before_reasons": reasons("discontinued_before", arm),
                "between": total("discontinued_between", arm),
                "between_reasons": reasons("discontinued_between", arm),
                "followed_last": total("followed_up_last", arm),
                "endpoints": reasons("analysed_endpoint", arm),
            }
            for arm in config.ARMS
        },
    }


def _n(k) -> str:
    """``"(n = 3)"`` with non-breaking spaces, so that a wrapped line never splits it."""
    return f"(n\u00a0=\u00a0{'?' if k is None else k})"


def _reason_lines(items, indent: str = "  ", width: int = 50) -> list:
    return [
        textwrap.fill(f"{r} {_n(k)}", width, initial_indent=indent, subsequent_indent=indent + "  ", break_on_hyphens=False)
        for r, k in items
    ]


def _consort_stages(flow: dict) -> list:
    """(side label, {arm: text}) of every box row below randomisation, top to bottom."""
    v, last = flow["visit_month"], config.VISITS[-1]

    def per_arm(fn):
        return {arm: fn(flow["arms"][arm]) for arm in config.ARMS}

    def allocated(a):
        nt = None if a["randomized"] is None or a["treated"] is None else a["randomized"] - a["treated"]
        return "\n".join(
            [
                f"Allocated {_n(a['randomized'])}",
                f"  Received the allocated intervention {_n(a['treated'])}",
                f"  Did not receive it {_n(nt)}",
            ]
        )

    def analysed(a):
        lines = [f"Analysed at month {v} {_n(a['evaluable'])}", f"  Not evaluable {_n(a['not_evaluable'])}"]
        return "\n".join(lines + _reason_lines(a["not_evaluable_reasons"], "    "))

    stages = [("Allocation", per_arm(allocated))]
    if not flow["split"]:
        stages.append(
            (
                "Follow-up",
                per_arm(
                    lambda a: "\n".join(
                        [f"Discontinued {_n(a['discontinued'])}", *(_reason_lines(a["discontinued_reasons"]) or ["  none"])]
                    )
                ),
            )
        )
        stages.append(("Analysis", per_arm(analysed)))
        return stages
    stages.append(
        (
            f"Follow-up to\nmonth {v}",
            per_arm(
                lambda a: "\n".join([f"Discontinued before month {v} {_n(a['before'])}", *_reason_lines(a["before_reasons"])])
            ),
        )
    )
    stages.append((f"Month {v}", per_arm(analysed)))
    stages.append(
        (
            f"Follow-up to\nmonth {last}",
            per_arm(
                lambda a: "\n".join(
                    [f"Discontinued between month {v} and {last} {_n(a['between'])}", *_reason_lines(a["between_reasons"])]
                )
            ),
        )
    )
    stages.append((f"Month {last}", per_arm(lambda a: f"Followed up to month {last} {_n(a['followed_last'])}")))
    if any(flow["arms"][arm]["endpoints"] for arm in config.ARMS):
        stages.append(
            ("Analysis", per_arm(lambda a: "\n".join(["Analysed, by endpoint", *_reason_lines(a["endpoints"], width=48)])))
        )
    return stages


def consort(flow_table: pd.DataFrame):
    """CONSORT 2010 flow diagram from the counts of :func:`respine_nb.stats.consort_flow`.

    The figure's height follows its content (no empty band). When the flow table has the stages
    of :data:`CONSORT_SPLIT_STAGES`, follow-up is split at the primary visit (discontinued before
    it / between it and month 24), with a month-24 box and the analysed n per endpoint.

    Parameters
    ----------
    flow_table : DataFrame
        Columns ``stage``, ``group``, ``reason``, ``n``, ``visit_month`` (see
        :func:`respine_nb.stats.consort_flow` and :data:`CONSORT_SPLIT_STAGES`).

    Returns
    -------
    matplotlib.figure.Figure
    """
    flow = _flow_dict(stable(flow_table))
    has_screening = flow.get("screened") is not None
    line_in, pad_in, gap_in = 0.128, 0.12, 0.3  # inches: one text line, box padding, gap between boxes

    def height(text: str) -> float:
        return text.count("\n") * line_in + line_in + pad_in

    stages = _consort_stages(flow)
    exclusion = (
        "\n".join([f"Excluded {_n(flow['excluded'])}", *_reason_lines(flow["exclusions"], width=52)]) if has_screening else ""
    )
    rows_h = [max(height(t) for t in texts.values()) for _, texts in stages]
    top_h = (max(height("x"), height(exclusion) * 0.87) + gap_in * 1.5 if has_screening else 0) + height("x") + gap_in * 1.2
    total = 0.15 + top_h + sum(rows_h) + gap_in * len(rows_h) + 0.05
    fig = plt.figure(figsize=(DOUBLE_COLUMN_IN, total))
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, 100)
    ax.set_ylim(0, total)
    ax.axis("off")
    box = dict(boxstyle="square,pad=0.5", facecolor="white", edgecolor="black", linewidth=0.8)
    kw = dict(ha="center", va="top", fontsize=7.5, bbox=box, multialignment="left", linespacing=1.25)
    arrow = dict(arrowstyle="-|>", color="black", linewidth=0.8, shrinkA=0, shrinkB=0)

    def arrow_(x0, y0, x1, y1):
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops=arrow)

    y = total - 0.15
    if has_screening:
        ax.text(50, y, f"Assessed for eligibility {_n(flow['screened'])}", **kw)
        y_box = y - height("x")
        ex_h = height(exclusion) * 0.87  # 6.5 pt text
        ex_mid = y_box - gap_in * 0.6 - ex_h / 2
        ax.text(57, ex_mid, exclusion, ha="left", va="center", fontsize=6.5, bbox=box, multialignment="left", linespacing=1.25)
        y_next = y_box - max(height("x"), ex_h) - gap_in * 0.9
        ax.plot([50, 50], [y_box - 0.05, ex_mid], color="black", lw=0.8)
        arrow_(50, ex_mid, 56, ex_mid)
        arrow_(50, ex_mid, 50, y_next + 0.06)
        y = y_next
    ax.text(50, y, f"Randomised {_n(flow['randomized'])}", **kw)
    y -= height("x")
    xs = {"BM-MSC": 25, "Sham": 75}
    split_y = y - gap_in * 0.45
    ax.plot([50, 50], [y - 0.02, split_y], color="black", lw=0.8)
    ax.plot([25, 75], [split_y, split_y], color="black", lw=0.8)
    y -= gap_in * 1.2
    for x in xs.values():
        arrow_(x, split_y, x, y + 0.06)
    for k, ((label, texts), h) in enumerate(zip(stages, rows_h)):
        for arm, x in xs.items():
            first = label == "Allocation"
            ax.text(x, y, (f"{arm}: " if first else "") + texts[arm], **kw)
            if k + 1 < len(stages):
                arrow_(x, y - h + 0.02, x, y - h - gap_in + 0.06)
        ax.text(
            50,
            y - h / 2 + 0.05,
            label,
            ha="center",
            va="center",
            fontsize=7,
            fontweight="bold",
            multialignment="center",
            bbox=dict(boxstyle="round,pad=0.3", facecolor="#DDEEFF", edgecolor="none"),
        )
        y -= h + gap_in
    return fig


def completeness_heatmap(table: pd.DataFrame):
    """Heatmap of the share of participants with an assessment, by arm (rows) and visit (columns).

    ``table`` is the output of :func:`respine_nb.stats.follow_up_completeness`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    table = stable(table)
    pct = table.pivot(index="arm", columns="visit_month", values="proportion").reindex(list(config.ARMS))
    counts = table.pivot(index="arm", columns="visit_month", values="n_observed").reindex(list(config.ARMS))
    total = table.pivot(index="arm", columns="visit_month", values="n_randomized").reindex(list(config.ARMS))
    annot = pd.DataFrame(
        [
            [f"{int(c)}/{int(t)}" if pd.notna(c) and pd.notna(t) else "" for c, t in zip(cr, tr)]
            for cr, tr in zip(counts.to_numpy(), total.to_numpy())
        ],
        index=pct.index,
        columns=pct.columns,
    )
    fig, ax = plt.subplots(figsize=(DOUBLE_COLUMN_IN * 0.7, 1.8))
    if pct.empty:
        _no_data(ax)
        return fig
    import seaborn as sns  # the heatmaps only: the other figures do without its import

    sns.heatmap(
        pct * 100, annot=annot, fmt="", vmin=50, vmax=100, cmap="Blues", cbar_kws={"label": "% observed"}, linewidths=0.5, ax=ax
    )
    ax.set_xlabel("Visit (month)")
    ax.set_ylabel("")
    ax.set_title("Outcome assessments observed (VAS or ODI present)")
    return fig


def baseline_distributions(adsl: pd.DataFrame, variables: dict):
    """One panel per baseline variable: box plot and points by arm.

    Parameters
    ----------
    adsl : DataFrame
        Subject-level data with an ``ARM`` column.
    variables : dict
        Column -> axis label.

    Returns
    -------
    matplotlib.figure.Figure
    """
    adsl = stable(adsl[["ARM", *variables]].astype({c: float for c in variables}).rename(columns={"ARM": "arm"}))
    fig, axes = plt.subplots(1, len(variables), figsize=(DOUBLE_COLUMN_IN, 2.4))
    for ax, (col, label) in zip(np.atleast_1d(axes), variables.items()):
        data = adsl[["arm", col]].dropna()
        ax.set_ylabel(label)
        if data.empty:
            _no_data(ax)
            continue
        _boxes(ax, [data.loc[data["arm"] == a, col] for a in config.ARMS], [ARM_COLORS[a] for a in config.ARMS])
        jitter_points(ax, data, "arm", col, list(config.ARMS))
        ax.set_xticks(range(len(config.ARMS)), config.ARMS)
        ax.set_xlim(-0.5, len(config.ARMS) - 0.5)
        ax.set_xlabel("")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- primary endpoint


def responders(props: pd.DataFrame, composition: pd.DataFrame, visit_month: int, denominator: str = "evaluable participants"):
    """Left: responder proportion with its CI per arm; right: which criterion made the responders.

    ``props`` has ``group``, ``estimate``, ``ci_low``, ``ci_high``, ``events``, ``n``;
    ``composition`` is :func:`respine_nb.stats.responder_composition`; ``denominator`` names
    the population the percentages are of (it labels the axis).

    Returns
    -------
    matplotlib.figure.Figure
    """
    props, composition = stable(props), stable(composition)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(DOUBLE_COLUMN_IN, 2.8), gridspec_kw={"width_ratios": [1, 1.3]})
    for i, arm in enumerate(config.ARMS):
        hit = props[props["group"] == arm]
        if hit.empty or pd.isna(hit["estimate"].iloc[0]):
            a1.text(i, 50, "no evaluable\nparticipant", ha="center", va="center", fontsize=7, color="0.4")
            continue
        r = hit.iloc[0]
        a1.bar(i, r["estimate"] * 100, color=ARM_COLORS[arm], width=0.6, alpha=0.85)
        below, above = _err([r["estimate"]], [r["ci_low"]], [r["ci_high"]], 100)
        a1.errorbar(i, r["estimate"] * 100, yerr=[below, above], color="black", capsize=4, lw=1)
        a1.text(i, 3, f"{int(r['events'])}/{int(r['n'])}", ha="center", va="bottom", color="white", fontsize=8)
    a1.set_xticks(range(len(config.ARMS)), config.ARMS)
    a1.set_ylim(0, 100)
    a1.set_ylabel(f"Responders at month {visit_month} (%)")
    a1.set_title("Responder proportion (95 % Wilson CI)")
    shades = {"both": 1.0, "VAS only": 0.65, "ODI only": 0.35}
    for i, arm in enumerate(config.ARMS):
        bottom = 0.0
        for comp in ("both", "VAS only", "ODI only"):
            hit = composition[(composition["group"] == arm) & (composition["component"] == comp)]["proportion"]
            v = float(hit.iloc[0]) * 100 if len(hit) else np.nan
            if not np.isfinite(v):
                continue
            a2.bar(
                i,
                v,
                bottom=bottom,
                color=ARM_COLORS[arm],
                alpha=shades[comp],
                width=0.6,
                edgecolor="white",
                label=comp if i == 0 else None,
            )
            if v >= 4:
                a2.text(i, bottom + v / 2, comp, ha="center", va="center", fontsize=6.5)
            bottom += v
    a2.set_xticks(range(len(config.ARMS)), config.ARMS)
    a2.set_ylim(0, 100)
    a2.set_ylabel(f"% of {denominator}")
    a2.set_title("Criterion met: VAS, ODI or both")
    fig.tight_layout()
    return fig


def _cell_labels(values: pd.DataFrame, fmt) -> np.ndarray:
    """Annotation strings of a heatmap; empty where the value is missing."""
    return np.array([[fmt(v) if pd.notna(v) else "" for v in row] for row in values.to_numpy()], dtype=object)


@contextlib.contextmanager
def _not_drawn(fig):
    """While it lasts, ``fig`` has a canvas that does not draw.

    For a heatmap whose tick labels and their rotation are set afterwards: seaborn's heatmap
    draws the whole figure to see whether its tick labels overlap (and then turns them), a draw
    of every panel drawn so far, 0.45 s of the three heatmap figures' 0.7 s; with this canvas it
    measures the labels without drawing. The figure's own canvas is put back.
    """
    from matplotlib.backend_bases import FigureCanvasBase

    canvas = fig.canvas
    FigureCanvasBase(fig)
    try:
        yield
    finally:
        fig.set_canvas(canvas)


def tipping_heatmap(tp: pd.DataFrame):
    """Heatmap of the p-value over the number of non-evaluable participants assumed to respond, per arm.

    ``tp`` is :func:`respine_nb.stats.tipping_point`: rows are BM-MSC counts, columns sham counts
    (each axis says "of k", the arm's number of non-evaluable). Cells with p < 0.05 are outlined;
    the annotation (grids up to 12 x 12) is the risk difference in percentage points.

    Returns
    -------
    matplotlib.figure.Figure
    """
    tp = stable(tp)
    fig, ax = plt.subplots(figsize=(DOUBLE_COLUMN_IN * 0.75, 4.2))
    if tp.empty:
        _no_data(ax)
        return fig
    k1, k2 = int(tp["not_evaluable_msc"].iloc[0]), int(tp["not_evaluable_sham"].iloc[0])
    piv = lambda col: tp.pivot(index="responders_msc", columns="responders_sham", values=col).sort_index(ascending=False)  # noqa: E731
    p, d, sig = piv("p_value"), piv("estimate"), piv("significant")
    small = max(p.shape) <= 12
    import seaborn as sns  # the heatmaps only: the other figures do without its import

    with _not_drawn(fig):  # the tick labels are set below
        sns.heatmap(
            p.astype(float),
            cmap="viridis_r",
            vmin=0,
            vmax=1,
            annot=_cell_labels(d * 100, lambda v: f"{round(v) + 0:d}") if small else False,
            fmt="",
            annot_kws={"fontsize": 5.5},
            cbar_kws={"label": "p (Yates chi-square)"},
            linewidths=0.3 if small else 0,
            ax=ax,
        )
    outlined = [(j, i) for (i, j), flag in np.ndenumerate(sig.to_numpy()) if flag is True or flag == 1]
    if outlined:
        from matplotlib.collections import PatchCollection

        # black outer and white inner edge: visible on the light and on the dark end of viridis. One
        # collection per edge, not one patch per cell: a large cohort outlines hundreds of cells
        # (1,572 patches at 11,400 participants: 1 s of drawing); the heatmap has fixed the limits.
        for color, width, z in (("black", 2.6 if small else 1.4, 4), ("white", 0.9 if small else 0.5, 5)):
            edges = PatchCollection(
                [plt.Rectangle(xy, 1, 1) for xy in outlined], facecolor="none", edgecolor=color, linewidths=width, zorder=z
            )
            edges.set_joinstyle("miter")  # as a Rectangle patch's corners
            ax.add_collection(edges, autolim=False)
    step = lambda n: max(1, int(np.ceil(n / 12)))  # noqa: E731
    sx, sy = step(len(p.columns)), step(len(p.index))
    ax.set_xticks(np.arange(len(p.columns))[::sx] + 0.5, [str(int(v)) for v in p.columns][::sx], rotation=0)
    ax.set_yticks(np.arange(len(p.index))[::sy] + 0.5, [str(int(v)) for v in p.index][::sy], rotation=0)
    ax.set_xlabel(f"Sham: non-evaluable participants assumed to respond (of {k2})")
    ax.set_ylabel(f"BM-MSC: assumed responders (of {k1})")
    ax.set_title("Tipping point: difference in % points" + (" (cells)" if small else "") + "; outlined: p < 0.05")
    return fig


def _chosen_thresholds(chosen, rule: str) -> tuple:
    """(vas_abs_mm, vas_rel, odi threshold) from a tuple or from a rule dict (the notebooks' ``rule``)."""
    if isinstance(chosen, dict):
        odi = chosen.get("odi_rel", config.ODI_REL) if rule == "relative" else chosen.get("odi_abs", config.ODI_ABS)
        return chosen.get("vas_abs_mm", config.VAS_ABS_MM), chosen.get("vas_rel", config.VAS_REL), odi
    return tuple(chosen)


def threshold_heatmaps(grid: pd.DataFrame, chosen):
    """One heatmap of the risk difference per ODI threshold, VAS thresholds on the axes.

    ``grid`` is :func:`respine_nb.stats.threshold_grid`; its ODI thresholds are fractions of
    baseline (relative rule, titles in %) or points (absolute rule, titles in points).
    ``chosen`` is the analysis' rule: a tuple (vas_abs_mm, vas_rel, odi threshold in the grid's
    unit) or the notebooks' rule dict (``vas_abs_mm``, ``vas_rel``, ``odi_rel``, ``odi_rule``,
    optional ``odi_abs``); its cell is outlined when it lies on the grid.

    Returns
    -------
    matplotlib.figure.Figure
    """
    grid = stable(grid)
    rule = str(grid["odi_rule"].iloc[0]) if len(grid) else "relative"
    vas_abs, vas_rel, odi_chosen = _chosen_thresholds(chosen, rule)
    odis = sorted(grid["odi_threshold"].unique())
    fig, axes = plt.subplots(1, max(1, len(odis)), figsize=(DOUBLE_COLUMN_IN, 2.6), sharey=True, squeeze=False)
    axes = axes.ravel()
    finite = grid["estimate"].to_numpy(dtype=float)
    finite = finite[np.isfinite(finite)]
    lim = max(0.05, float(np.abs(finite).max())) if len(finite) else 0.05
    if not odis:
        _no_data(axes[0])
    import seaborn as sns  # the heatmaps only: the other figures do without its import

    for k, (ax, o) in enumerate(zip(axes, odis)):
        g = grid[grid["odi_threshold"] == o].pivot(index="vas_abs_mm", columns="vas_rel", values="estimate")
        g = g.sort_index(ascending=False).astype(float)
        with _not_drawn(fig):  # the tick labels are set below
            sns.heatmap(
                g * 100,
                cmap="RdBu_r",
                vmin=-lim * 100,
                vmax=lim * 100,
                ax=ax,  # symmetric: 0 is white
                annot=_cell_labels(g * 100, lambda v: f"{round(v) + 0:d}"),
                fmt="",
                annot_kws={"fontsize": 5},
                cbar=k == len(odis) - 1,
                cbar_kws={"label": "BM-MSC minus sham (% points)"},
            )
        ax.set_xticks(np.arange(len(g.columns)) + 0.5, [f"{v:.0%}" for v in g.columns], rotation=90)
        ax.set_yticks(np.arange(len(g.index)) + 0.5, [f"{v:g}" for v in g.index], rotation=0)
        ax.set_title(f"ODI >= {o:.0%}" if rule == "relative" else f"ODI >= {o:g} points")
        ax.set_xlabel("VAS relative")
        ax.set_ylabel("VAS absolute (mm)" if k == 0 else "")
        if np.isclose(o, odi_chosen):
            rows = [i for i, v in enumerate(g.index) if np.isclose(v, vas_abs)]
            cols = [j for j, v in enumerate(g.columns) if np.isclose(v, vas_rel)]
            if rows and cols:
                ax.add_patch(plt.Rectangle((cols[0], rows[0]), 1, 1, fill=False, edgecolor="black", lw=1.5))
    fig.tight_layout()
    return fig


def forest(sub: pd.DataFrame, overall: pd.Series | None = None, overall_label: str = "All evaluable"):
    """Forest plot of the risk difference by subgroup level, with interaction p-values; the
    overall row (``overall``, labelled ``overall_label``) first.

    Returns
    -------
    matplotlib.figure.Figure
    """
    sub, overall = stable(sub), stable(overall)
    n = len(sub) + (2 if overall is not None else 0) + sub["subgroup"].nunique()
    fig, ax = plt.subplots(figsize=(DOUBLE_COLUMN_IN, 0.22 * n + 0.8))
    y, labels, ys = 0, [], []
    if overall is not None:
        est = float(overall["estimate"])
        if np.isfinite(est):
            ax.errorbar(
                est * 100,
                y,
                xerr=_err([est], [overall["ci_low"]], [overall["ci_high"]], 100),
                fmt="D",
                color="black",
                capsize=2,
                ms=4,
            )
        labels.append(overall_label if np.isfinite(est) else f"{overall_label} (not estimable)")
        ys.append(y)
        y -= 2
    for name, g in sub.groupby("subgroup", sort=False):
        p = g["p_interaction"].iloc[0]
        labels.append(f"{name} (interaction p = {p:.2f})" if np.isfinite(p) else f"{name} (interaction p not estimable)")
        ys.append(y)
        y -= 1
        for _, r in g.iterrows():
            if np.isfinite(r["estimate"]):
                ax.errorbar(
                    r["estimate"] * 100,
                    y,
                    xerr=_err([r["estimate"]], [r["ci_low"]], [r["ci_high"]], 100),
                    fmt="s",
                    color=ARM_COLORS["BM-MSC"],
                    capsize=2,
                    ms=3,
                )
            labels.append(
                f"    {r['level']}  ({int(r['events_msc'])}/{int(r['n_msc'])} vs {int(r['events_sham'])}/{int(r['n_sham'])})"
            )
            ys.append(y)
            y -= 1
    ax.axvline(0, color="0.4", lw=0.8, ls="--")
    ax.set_yticks(ys, labels)
    if not ys:
        _no_data(ax)
    ax.set_xlabel("Responders, BM-MSC minus sham (% points, 95 % Newcombe CI)")
    ax.set_xlim(-_forest_limit(sub, overall), _forest_limit(sub, overall))
    trans = ax.get_xaxis_transform()
    ax.text(-2, 1.0, "\u2190 favours sham", transform=trans, ha="right", va="bottom", fontsize=7, color="0.3")
    ax.text(2, 1.0, "favours BM-MSC \u2192", transform=trans, ha="left", va="bottom", fontsize=7, color="0.3")
    fig.tight_layout()
    return fig


def _forest_limit(sub: pd.DataFrame, overall) -> float:
    """Symmetric x limit (% points) of the forest plot: the widest finite bound plus a margin, to the
    next 10, between 10 and 100 (a risk difference never leaves [-100, 100])."""
    vals = [sub[c].to_numpy(dtype=float) for c in ("estimate", "ci_low", "ci_high") if c in sub]
    if overall is not None:
        vals.append(np.array([overall.get(c, np.nan) for c in ("estimate", "ci_low", "ci_high")], dtype=float))
    v = np.abs(np.concatenate(vals)) * 100 if vals else np.array([])
    v = v[np.isfinite(v)]
    top = float(v.max()) * 1.05 if len(v) else 100.0
    return float(min(100, max(10, np.ceil(top / 10) * 10)))


def delta_adjusted(rows: pd.DataFrame):
    """Delta-adjusted multiple imputation as a tipping-point figure: the responder difference
    (% points, 95 % CI) against the penalty D given to the BM-MSC participants' imputed values.

    Parameters
    ----------
    rows : pandas.DataFrame
        One row per D: ``delta`` (mm of VAS), ``estimate``, ``ci_low``, ``ci_high``, ``p_value``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    d = stable(rows).sort_values("delta")
    fig, ax = plt.subplots(figsize=(SINGLE_COLUMN_IN, 2.6))
    ok = d[np.isfinite(d["estimate"].to_numpy(dtype=float))]
    if ok.empty:
        _no_data(ax, "not estimable")
    for significant, g in ok.groupby(ok["p_value"] < 0.05):
        ax.errorbar(
            g["delta"],
            g["estimate"] * 100,
            yerr=_err(g["estimate"], g["ci_low"], g["ci_high"], 100),
            fmt="o",
            color=ARM_COLORS["BM-MSC"],
            mfc=ARM_COLORS["BM-MSC"] if significant else "white",
            capsize=2,
            ms=4,
            label="p < 0.05" if significant else "p ≥ 0.05",
        )
    ax.plot(ok["delta"], ok["estimate"] * 100, color=ARM_COLORS["BM-MSC"], lw=0.8)
    ax.axhline(0, color="0.4", lw=0.8, ls="--")
    ax.set_xticks(d["delta"].to_numpy(dtype=float))
    ax.set_xlabel("D: BM-MSC imputed VAS worse by D mm (ODI by D/2 points)")
    ax.set_ylabel("Responders, BM-MSC minus sham\n(% points, 95 % CI)")
    if not ok.empty:
        ax.legend(loc="best")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- secondary endpoints

_DODGE = {"BM-MSC": -0.12, "Sham": 0.12}


def _visit_axis(ax, visits):
    ax.set_xticks(range(len(visits)), [str(v) for v in visits])
    ax.set_xlabel("Month")


def by_visit(
    table: pd.DataFrame,
    panels: dict,
    y: str = "mean",
    ylabel: str | None = None,
    ncols: int = 2,
    zero_line: bool = False,
    percent: bool = False,
):
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
    table = stable(table)
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(DOUBLE_COLUMN_IN, 2.3 * nrows), squeeze=False)
    scale = 100 if percent else 1
    for ax, (measure, title) in zip(axes.ravel(), panels.items()):
        d = table[table["measure"] == measure]
        visits = sorted(d["visit_month"].unique())
        pos = {v: i for i, v in enumerate(visits)}
        ax.set_title(title)
        if not np.isfinite(d[y].to_numpy(dtype=float)).any():
            _no_data(ax)
            continue
        for arm in config.ARMS:
            a = d[d["group"] == arm].sort_values("visit_month")
            x = np.array([pos[v] for v in a["visit_month"]], dtype=float) + _DODGE[arm]
            ax.errorbar(
                x,
                a[y].to_numpy(dtype=float) * scale,
                yerr=_err(a[y], a["ci_low"], a["ci_high"], scale),
                color=ARM_COLORS[arm],
                marker=ARM_MARKERS[arm],
                ms=3.5,
                lw=1.2,
                capsize=2,
                label=arm,
            )
        if zero_line:
            ax.axhline(0, color="0.5", lw=0.7, ls="--")
        _visit_axis(ax, visits)
        ax.set_ylabel(ylabel or "")
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    _arm_legend(axes.ravel()[0], loc="best")
    fig.tight_layout()
    return fig


def spaghetti(adeff: pd.DataFrame, measure: str, per_arm: int = 15, seed: int = 1):
    """Individual trajectories of ``measure`` (a PARAMCD of ADEFF) for a random sample of
    participants per arm.

    Returns
    -------
    matplotlib.figure.Figure
    """
    rng = np.random.default_rng(seed)
    d = adeff[(adeff["PARAMCD"] == measure) & adeff["AVAL"].notna()]
    d = stable(d[["USUBJID", "ARM", "AVISITN", "AVAL"]].set_axis(["subject_id", "arm", "visit_month", "value"], axis=1))
    fig, axes = plt.subplots(1, 2, figsize=(DOUBLE_COLUMN_IN, 2.5), sharey=True)
    visits = list(config.VISITS)
    pos = {v: i for i, v in enumerate(visits)}
    for ax, arm in zip(axes, config.ARMS):
        ids = sorted(d.loc[d["arm"] == arm, "subject_id"].unique())
        pick = sorted(rng.choice(ids, size=min(per_arm, len(ids)), replace=False)) if ids else []
        picked = d[d["subject_id"].isin(pick)]  # the few drawn, not the whole cohort, filtered per participant
        for sid in pick:
            s = picked[picked["subject_id"] == sid].sort_values("visit_month")
            ax.plot(
                [pos[v] for v in s["visit_month"]],
                s["value"].astype(float),
                color=ARM_COLORS[arm],
                lw=0.7,
                alpha=0.6,
                marker="o",
                ms=1.5,
            )
        _visit_axis(ax, visits)
        ax.set_title(f"{arm}: {len(pick)} participants at random")
        if not pick:
            _no_data(ax)
    axes[0].set_ylabel(config.PARAM_LABELS[measure])
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


def t2_by_grade(grades: pd.DataFrame):
    """Box plot and points of T2 by modified Pfirrmann grade.

    Parameters
    ----------
    grades : DataFrame
        The MRI parameters side by side at one visit (:func:`respine_nb.derive.mri_by_visit`).

    Returns
    -------
    matplotlib.figure.Figure
    """
    d = grades.dropna(subset=["T2NP", "PFIRR"])
    grades = sorted(int(g) for g in d["PFIRR"].unique())
    data = stable(
        pd.DataFrame(
            {
                "grade": d["PFIRR"].astype(int).astype(str).to_numpy(),
                "t2": d["T2NP"].astype(float).to_numpy(),
                "arm": d["ARM"].astype(str).to_numpy(),
            }
        )
    )
    fig, ax = plt.subplots(figsize=(SINGLE_COLUMN_IN * 1.3, 2.6))
    if data.empty:
        _no_data(ax)
        return fig
    _boxes(ax, [data.loc[data["grade"] == str(g), "t2"] for g in grades], ["0.85"] * len(grades), alpha=1.0)
    ax.set_xticks(range(len(grades)), [str(g) for g in grades])
    ax.set_xlim(-0.5, len(grades) - 0.5)
    rng = np.random.default_rng(1)
    for i, g in enumerate(grades):
        for arm in config.ARMS:
            vals = data.loc[(data["grade"] == str(g)) & (data["arm"] == arm), "t2"].to_numpy()
            ax.scatter(
                i + rng.uniform(-0.15, 0.15, len(vals)),
                vals,
                s=9,
                color=ARM_COLORS[arm],
                marker=ARM_MARKERS[arm],
                alpha=0.8,
                linewidths=0,
                zorder=3,
                label=arm if i == 0 else None,
            )
    ax.set_xlabel("Modified Pfirrmann grade (Griffith 2007)")
    ax.set_ylabel("Nucleus pulposus T2 (ms)")
    # the legend shows the points' own marker and colour (no line: none is drawn)
    handles = [
        plt.Line2D([], [], ls="none", marker=ARM_MARKERS[a], color=ARM_COLORS[a], ms=3.5, alpha=0.8, label=a) for a in config.ARMS
    ]
    ax.legend(handles=handles, loc="upper right")
    fig.tight_layout()
    return fig


def baseline_vs_followup(pairs: pd.DataFrame, visit_month: int, label: str = "T2 (ms)"):
    """Baseline against follow-up per participant, one panel per arm, with the identity line.

    Parameters
    ----------
    pairs : DataFrame
        The change view (:func:`respine_nb.derive.paired_visit`: ``ARM``, ``BASE``, ``AVAL``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    pairs = stable(pairs[["ARM", "BASE", "AVAL"]].set_axis(["arm", "baseline", "value"], axis=1))
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
        if d.empty:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", fontsize=8, color="0.4")
    axes[0].set_ylabel(f"Month {visit_month} {label}")
    fig.tight_layout()
    return fig


def change_scatter(pairs: pd.DataFrame, adeff: pd.DataFrame, visit_month: int, measures=("VAS", "ODI")):
    """T2 change against symptom change at the same visit, coloured by arm, one panel per measure.

    Parameters
    ----------
    pairs : DataFrame
        The T2 change view (:func:`respine_nb.derive.paired_visit`: ``USUBJID``, ``ARM``, ``CHG``).
    adeff : DataFrame
        The efficacy dataset (CHG of the measures).
    visit_month : int
    measures : sequence of str
        PARAMCD of the symptom measures.

    Returns
    -------
    matplotlib.figure.Figure
    """
    pairs = stable(pairs[["USUBJID", "ARM", "CHG"]].set_axis(["subject_id", "arm", "change"], axis=1))
    adeff = adeff[adeff["PARAMCD"].isin(measures) & (adeff["AVISITN"] == visit_month)]
    adeff = stable(adeff[["USUBJID", "PARAMCD", "CHG"]].set_axis(["subject_id", "measure", "change"], axis=1))
    fig, axes = plt.subplots(1, len(measures), figsize=(DOUBLE_COLUMN_IN, 2.6))
    for ax, m in zip(np.atleast_1d(axes), measures):
        ch = adeff[adeff["measure"] == m].set_index("subject_id")["change"]
        d = pairs.assign(symptom=pairs["subject_id"].map(ch).astype(float)).dropna(subset=["symptom"])
        for arm in config.ARMS:
            a = d[d["arm"] == arm]
            ax.scatter(
                a["change"], a["symptom"], s=9, color=ARM_COLORS[arm], marker=ARM_MARKERS[arm], alpha=0.8, linewidths=0, label=arm
            )
        ax.axhline(0, color="0.6", lw=0.6)
        ax.axvline(0, color="0.6", lw=0.6)
        ax.set_xlabel(f"T2 change to month {visit_month} (ms)")
        ax.set_ylabel(f"Change in {config.PARAM_LABELS[m]}")
        if d.empty:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", fontsize=8, color="0.4")
    _arm_legend(np.atleast_1d(axes)[0], loc="best")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- time to response

STATUS_COLORS = {"responder": "#009E73", "non-responder": "#D55E00", "not evaluable": "#BBBBBB", "discontinued": "#FFFFFF"}


def km_response(adtte: pd.DataFrame, npmle: pd.DataFrame | None = None):
    """Kaplan-Meier cumulative proportion responding by arm (95 % band), number at risk below,
    and the Turnbull NPMLE (interval-censored) as open markers at the visit closing each interval.

    Parameters
    ----------
    adtte : DataFrame
        The time-to-event dataset (``ARM``, ``AVAL``, ``CNSR``).
    npmle : DataFrame, optional
        :func:`respine_nb.stats.turnbull`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from lifelines import KaplanMeierFitter

    adtte = pd.DataFrame(
        {
            "arm": adtte["ARM"].to_numpy(),
            "time": pd.to_numeric(adtte["AVAL"]).to_numpy(dtype=float),
            "event": pd.to_numeric(adtte["CNSR"]).to_numpy(dtype=float) == 0,
        }
    )
    adtte, npmle = stable(adtte), stable(npmle)
    fig, ax = plt.subplots(figsize=(DOUBLE_COLUMN_IN * 0.75, 3.6))
    ticks = [0, *config.POST_BASELINE_VISITS]
    if adtte.empty:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", fontsize=8, color="0.4")
    for arm in config.ARMS:
        d = adtte[adtte["arm"] == arm]
        if d.empty:
            continue
        kmf = KaplanMeierFitter().fit(d["time"].astype(float), d["event"].astype(bool), label=arm)
        kmf.plot_cumulative_density(ax=ax, ci_show=True, color=ARM_COLORS[arm], lw=1.5, ci_alpha=0.15)
        if npmle is not None:
            t = npmle[(npmle["group"] == arm) & np.isfinite(npmle["upper"])]
            ax.plot(
                t["upper"],
                t["cumulative"],
                ls="none",
                marker="o",
                mfc="white",
                mec=ARM_COLORS[arm],
                ms=5,
                label=f"{arm}, Turnbull NPMLE",
            )
    ax.set_xticks(ticks)
    ax.set_xlim(-0.5, max(ticks) + 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("Month")
    ax.set_ylabel("Cumulative proportion responding")
    if ax.get_legend_handles_labels()[0]:
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

    Parameters
    ----------
    status : DataFrame
        The durability view (:func:`respine_nb.derive.status_by_visit`).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.colors import ListedColormap

    status = status[["USUBJID", "ARM", "AVISITN", "STATUS"]].set_axis(["subject_id", "arm", "visit_month", "status"], axis=1)

    codes = {s: i for i, s in enumerate(STATUS_COLORS)}
    cmap = ListedColormap(list(STATUS_COLORS.values()))
    visits = sorted(status["visit_month"].unique())
    fig, axes = plt.subplots(1, 2, figsize=(DOUBLE_COLUMN_IN, 4.2))
    for ax, arm in zip(axes, config.ARMS):
        if not (status["arm"] == arm).any():
            ax.set_title(f"{arm} (n = 0)")
            _no_data(ax)
            continue
        w = status[status["arm"] == arm].pivot(index="subject_id", columns="visit_month", values="status")[visits]
        m = w.map(codes.get).astype(int)
        m = m.sort_values(list(reversed(visits)), kind="mergesort").sort_values(visits, kind="mergesort")
        ax.imshow(m.to_numpy(), aspect="auto", cmap=cmap, vmin=0, vmax=len(codes) - 1, interpolation="nearest")
        ax.set_xticks(range(len(visits)), [str(v) for v in visits])
        ax.set_yticks([])
        ax.set_xlabel("Month")
        ax.set_ylabel("Participants (one row each)")
        ax.set_title(f"{arm} (n = {len(m)})")
        for sp in ax.spines.values():
            sp.set_visible(True)
    handles = [plt.Rectangle((0, 0), 1, 1, facecolor=c, edgecolor="0.6", label=s) for s, c in STATUS_COLORS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


# --------------------------------------------------------------------------- safety and immunology

SEVERITY_MARKERS = {"mild": "o", "moderate": "s", "severe": "^"}
AE_DAY_TICKS = (0, 1, 7, 30, 90, 180, 365, 730)


def ae_onset(adae: pd.DataFrame):
    """Onset day of every treatment-emergent adverse event by arm (symmetric log scale), marker by
    severity, filled when serious.

    Parameters
    ----------
    adae : DataFrame
        The adverse events (``TRTEMFL``, ``ARM``, ``AESEV``, ``AESER``, ``ASTDY``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.ticker import NullLocator

    fig, ax = plt.subplots(figsize=(DOUBLE_COLUMN_IN * 0.8, 2.2))
    rng = np.random.default_rng(1)
    adae = stable(adae)
    ae = adae[adae["TRTEMFL"] == "Y"] if len(adae) else adae
    for i, arm in enumerate(config.ARMS):
        for sev, marker in SEVERITY_MARKERS.items():
            d = ae[(ae["ARM"] == arm) & (ae["AESEV"] == sev)] if len(ae) else ae
            if not len(d):
                continue
            y = i + rng.uniform(-0.25, 0.25, len(d))
            serious = (d["AESER"] == "Y").to_numpy()
            ax.scatter(
                d["ASTDY"].astype(float)[~serious],
                y[~serious],
                marker=marker,
                s=12,
                facecolors="none",
                edgecolors=ARM_COLORS[arm],
                linewidths=0.8,
            )
            ax.scatter(d["ASTDY"].astype(float)[serious], y[serious], marker=marker, s=16, color=ARM_COLORS[arm])
    ax.set_xscale("symlog", linthresh=7)
    ax.set_xlim(-0.5, 1000)
    # plain day ticks (the symlog default labels them 10^0, 10^1, ...)
    ax.set_xticks(AE_DAY_TICKS, [str(d) for d in AE_DAY_TICKS])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_yticks(range(len(config.ARMS)), config.ARMS)
    ax.set_ylim(-0.6, len(config.ARMS) - 0.4)
    ax.set_xlabel("Onset, days after the procedure (log scale beyond day 7)")
    ax.set_ylabel("Arm")
    handles = [plt.Line2D([], [], marker=m, ls="none", mfc="none", mec="0.3", label=s) for s, m in SEVERITY_MARKERS.items()]
    handles.append(plt.Line2D([], [], marker="o", ls="none", color="0.3", label="serious (filled)"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=4)
    if not len(ae):
        ax.text(0.5, 0.5, "no adverse events", transform=ax.transAxes, ha="center", va="center")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- trial design (07)

DESIGN_ANALYSES = {
    "responder": ("Responder (Yates chi-square)", OKABE_ITO[0], "o"),
    "ancova": ("VAS change (ANCOVA)", OKABE_ITO[2], "s"),
    "mmrm": ("VAS change (MMRM)", OKABE_ITO[5], "^"),
}


def power_curves(oc: pd.DataFrame, target: float = 0.8):
    """Simulated power (Monte Carlo 95 % interval) against participants randomised per arm, one
    curve per analysis, with the target power as a dashed line.

    Parameters
    ----------
    oc : pandas.DataFrame
        Operating characteristics (:func:`respine_nb.design.sweep`): ``analysis``, ``hypothesis``,
        ``n_per_arm``, ``rejection_rate``, ``mc_low``, ``mc_high``; the ``alternative`` rows are drawn.
    target : float
        The power drawn as a reference line.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = plt.subplots(figsize=(DOUBLE_COLUMN_IN * 0.7, 2.8))
    alt = stable(oc[oc["hypothesis"] == "alternative"]) if len(oc) else pd.DataFrame()
    ax.axhline(target, color="0.5", ls="--", lw=0.8)
    for analysis, (label, colour, marker) in DESIGN_ANALYSES.items():
        part = alt[alt["analysis"] == analysis].sort_values("n_per_arm") if len(alt) else alt
        if not len(part):
            continue
        ax.errorbar(
            part["n_per_arm"],
            part["rejection_rate"],
            yerr=_err(part["rejection_rate"], part["mc_low"], part["mc_high"]),
            color=colour,
            marker=marker,
            ms=4,
            capsize=2,
            lw=1.2,
            label=label,
        )
    if not len(alt):
        _no_data(ax, "not simulated")
    else:
        ax.set_xscale("log")
        sizes = sorted(alt["n_per_arm"].astype(int).unique())
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.minorticks_off()
        ax.legend(loc="lower right")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("Participants randomised per arm (log scale)")
    ax.set_ylabel("Power (Monte Carlo 95 % CI)")
    fig.tight_layout()
    return fig

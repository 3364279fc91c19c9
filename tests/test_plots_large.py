"""Figures of large cohorts: scatter layers above :data:`plots.RASTERIZE_ABOVE` points are one image
in the PDF (at the PNG's resolution); the PNG, and every figure below the threshold, are unchanged."""

from __future__ import annotations

import io as _io
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from respine_nb import config, derive, plots  # noqa: E402


def _scatter_figure(n: int, small: int = 10):
    plots.theme()
    rng = np.random.default_rng(3)
    fig, ax = plt.subplots(figsize=(3, 2.5))
    ax.plot([0, 1], [0, 1], color="0.5", lw=0.8, ls="--")
    ax.scatter(rng.uniform(size=n), rng.uniform(size=n), s=9, color=plots.ARM_COLORS["BM-MSC"], alpha=0.8, linewidths=0)
    ax.scatter(rng.uniform(size=small), rng.uniform(size=small), s=9, color=plots.ARM_COLORS["Sham"], marker="s")
    ax.set_xlabel("x")
    fig.tight_layout()
    return fig


def _save(fig, folder) -> tuple[bytes, bytes]:
    png, pdf = plots.save(fig, "f", folder)
    plt.close(fig)
    return png.read_bytes(), pdf.read_bytes()


def _images(pdf: bytes) -> list:
    """(width px, height px, placed width pt, placed height pt) of every image drawn on the page."""
    from pypdf import PdfReader

    page = PdfReader(_io.BytesIO(pdf)).pages[0]
    xobjects = page["/Resources"].get("/XObject")
    xobjects = xobjects.get_object() if xobjects is not None else {}
    content = page.get_contents().get_data().decode("latin1")
    out = []
    for m in re.finditer(r"([-\d. ]+) cm\s*/(\w+) Do", content):
        o = xobjects["/" + m.group(2)].get_object()
        if o.get("/Subtype") == "/Image":
            w, _, _, h, _, _ = (float(v) for v in m.group(1).split())
            out.append((int(o["/Width"]), int(o["/Height"]), w, h))
    return out


def _draws(pdf: bytes) -> int:
    """How many XObjects (markers, images) the page draws."""
    from pypdf import PdfReader

    return len(re.findall(r"/\w+ Do", PdfReader(_io.BytesIO(pdf)).pages[0].get_contents().get_data().decode("latin1")))


def test_a_dense_scatter_layer_is_one_image_in_the_pdf_and_the_png_is_unchanged(tmp_path, monkeypatch):
    n = plots.RASTERIZE_ABOVE + 1
    fig = _scatter_figure(n)
    dense = plots.dense_layers(fig)
    assert [len(c.get_offsets()) for c in dense] == [n]  # the 10-point layer stays vector
    png, pdf = _save(fig, tmp_path / "a")
    assert not dense[0].get_rasterized()  # set for the PDF only
    images = _images(pdf)
    assert len(images) == 1
    w_px, h_px, w_pt, h_pt = images[0]
    assert w_px / w_pt * 72 == pytest.approx(plots.PNG_DPI, rel=0.01)
    assert h_px / h_pt * 72 == pytest.approx(plots.PNG_DPI, rel=0.01)

    monkeypatch.setattr(plots, "RASTERIZE_ABOVE", 10**9)
    png_vector, pdf_vector = _save(_scatter_figure(n), tmp_path / "b")
    assert png == png_vector
    assert not _images(pdf_vector)
    assert _draws(pdf) < 50 < n < _draws(pdf_vector)  # the markers are no longer written one by one


def test_at_the_threshold_the_pdf_is_unchanged(tmp_path, monkeypatch):
    n = plots.RASTERIZE_ABOVE
    fig = _scatter_figure(n)
    assert not plots.dense_layers(fig)
    png, pdf = _save(fig, tmp_path / "a")
    assert not _images(pdf)
    monkeypatch.setattr(plots, "RASTERIZE_ABOVE", 10**9)
    assert (png, pdf) == _save(_scatter_figure(n), tmp_path / "b")


def test_default_cohort_figures_have_no_dense_layer(default_tables):
    d = derive.derive_all(default_tables)
    pairs = derive.paired_visit(d["admri"], 12)
    for fig in (
        plots.baseline_distributions(d["adsl"], {"BVAS": "VAS (mm)", "BODI": "ODI (%)", "BT2": "T2 (ms)"}),
        plots.t2_by_grade(derive.mri_by_visit(d["admri"], 0)),
        plots.baseline_vs_followup(pairs, 12),
        plots.change_scatter(pairs, d["adeff"], 12),
        plots.ae_onset(d["adae"]),
    ):
        assert not plots.dense_layers(fig)
        plt.close(fig)


def test_a_large_cohort_scatter_figure_draws_each_arm_as_one_image(tmp_path):
    rng = np.random.default_rng(5)
    n = 2 * (plots.RASTERIZE_ABOVE + 200)
    base = rng.normal(60, 15, n)
    pairs = pd.DataFrame({"ARM": np.repeat(list(config.ARMS), n // 2), "BASE": base, "AVAL": base + rng.normal(0, 5, n)})
    fig = plots.baseline_vs_followup(pairs, 12)
    assert len(plots.dense_layers(fig)) == len(config.ARMS)
    _, pdf = _save(fig, tmp_path)
    assert len(_images(pdf)) == len(config.ARMS)

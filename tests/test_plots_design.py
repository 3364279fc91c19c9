"""plots.power_curves: a Figure with its axes labelled and one legend entry per simulated analysis."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from respine_nb import design, plots


def _oc(analyses=("responder", "ancova")):
    return design.sweep([30, 60], analyses=analyses, n_trials=200, seed=1, progress=False)


def test_power_curves_returns_a_labelled_figure_with_one_legend_entry_per_analysis():
    oc = _oc()
    before = oc.copy()
    fig = plots.power_curves(oc)
    ax = fig.axes[0]
    assert isinstance(fig, plt.Figure)
    assert ax.get_xlabel().startswith("Participants randomised per arm") and ax.get_ylabel().startswith("Power")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [plots.DESIGN_ANALYSES[a][0] for a in ("responder", "ancova")]
    pd.testing.assert_frame_equal(oc, before)  # the input is not modified
    plt.close(fig)


def test_power_curves_of_an_empty_sweep_says_so():
    fig = plots.power_curves(pd.DataFrame())
    assert fig.axes[0].get_legend() is None
    assert "not simulated" in [t.get_text() for t in fig.axes[0].texts]
    plt.close(fig)

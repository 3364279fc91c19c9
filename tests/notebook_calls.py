"""Every analysis and figure call of the six notebooks, in notebook order, on one dataset.

:func:`run` mirrors the notebooks' cells (same functions, same arguments) without a kernel, so
property-based tests and scenario checks can assert that nothing raises on a dataset the
validator accepts. It returns the named results, so tests can check their columns.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from respine_nb import config, derive, mmrm, plots, results, stats, tables  # noqa: E402

RULE = dict(vas_abs_mm=config.VAS_ABS_MM, vas_rel=config.VAS_REL, odi_rel=config.ODI_REL, odi_rule="relative")


def _fig(fig) -> None:
    """A figure must be a Figure; closed at once (memory)."""
    assert isinstance(fig, plt.Figure)
    plt.close(fig)


def run(
    raw: dict,
    visit_month: int = 12,
    rule: dict | None = None,
    population: str = "evaluable",
    immunology_visit: int = 6,
    n_imputations: int = 3,
    with_mmrm: bool = True,
) -> dict:
    """Call every analysis and figure function of the notebooks on ``raw`` (validated tables),
    through the analysis datasets the notebooks read (``nb.adsl``, ...: derive.derive_all)."""
    rule = dict(RULE if rule is None else rule)
    out = {}
    ad = derive.derive_all(raw, visit_month, **rule)
    adsl, eff = ad["adsl"], ad["adeff"]
    # 01 cohort
    out["arm_counts"] = stats.arm_counts(adsl)
    out["evaluable"] = stats.arm_counts(adsl, "EVALFL")
    out["flow"] = stats.consort_flow(adsl, ad["adds"], visit_month=visit_month)
    _fig(plots.consort(out["flow"]))
    out["table1"] = tables.table1(adsl).tableone
    out["completeness"] = stats.follow_up_completeness(eff)
    _fig(plots.completeness_heatmap(out["completeness"]))
    _fig(plots.baseline_distributions(adsl, {"BVAS": "VAS", "BODI": "ODI", "BT2": "T2"}))
    # 02 primary
    resp_all = derive.responders(adsl, eff, visit_month)
    resp = derive.population(resp_all, population)
    wide = derive.wide_outcomes(eff)
    out["p1"] = p1 = stats.primary_analysis(resp)
    out["site_adjusted"] = stats.logistic_or(resp, covariates=["SITEID"])
    out["composition"] = stats.responder_composition(resp)
    _fig(plots.responders(p1[p1["analysis"] == "responders"], out["composition"], visit_month))
    out["not_evaluable"] = stats.not_evaluable(resp_all)
    out["nri"] = stats.primary_analysis(derive.population(resp_all, "nri"))
    out["treated"] = stats.primary_analysis(derive.population(resp_all, "treated"))
    out["mi"] = stats.mi_risk_difference(wide, visit_month, m=n_imputations, seed=1, **rule)
    results.contrast_table({"primary": p1, "nri": out["nri"], "treated": out["treated"], "mi": out["mi"]})
    out["tipping"] = stats.tipping_point(resp_all)
    _fig(plots.tipping_heatmap(out["tipping"]))
    out["grid"] = stats.threshold_grid(wide, visit_month, odi_rule=rule["odi_rule"])
    chosen = rule["odi_rel"] if rule["odi_rule"] == "relative" else rule.get("odi_abs", config.ODI_ABS)
    _fig(plots.threshold_heatmaps(out["grid"], (rule["vas_abs_mm"], rule["vas_rel"], chosen)))
    out["subgroups"] = stats.subgroups(resp, derive.SUBGROUPS)
    rd = p1[p1["analysis"] == "risk_difference"].iloc[0]
    _fig(plots.forest(out["subgroups"], rd))
    out["interactions"] = stats.subgroup_interactions(resp, out["subgroups"], derive.SUBGROUPS)
    # 03 secondary
    panels = config.PARAM_LABELS
    out["trajectories"] = stats.trajectories(eff)
    _fig(plots.by_visit(out["trajectories"], panels, ylabel="mean"))
    tables.wide_ci(out["trajectories"][out["trajectories"]["measure"] == "VAS"], "visit_month", "group", estimate="mean")
    _fig(plots.spaghetti(eff, "VAS", per_arm=5, seed=1))
    if with_mmrm:
        mm, _ = mmrm.mmrm_by_measure(eff)
        out["mmrm"] = mm
        _fig(plots.lsmeans_change(mm, panels))
        diff = mm[mm["term"] == "difference"]
        tables.wide_ci(diff, "visit_month", "measure")
        results.p_table(diff, "visit_month", "measure")
    out["mcid"] = stats.mcid_proportions(eff)
    _fig(
        plots.by_visit(
            out["mcid"].rename(columns={"estimate": "mean"}), {m: m for m in config.MCID_PARAMS}, y="mean", percent=True
        )
    )
    out["responders_by_visit"] = stats.responders_by_visit(eff)
    _fig(
        plots.by_visit(
            out["responders_by_visit"].assign(measure="responder").rename(columns={"estimate": "mean"}),
            {"responder": "Responders"},
            y="mean",
            percent=True,
        )
    )
    out["anova"] = stats.mixed_anova_completers(eff, ("VAS", "ODI"))
    # 04 MRI
    mri = ad["admri"]
    stats.images_by_visit(mri)
    grades = derive.mri_by_visit(mri, 0)
    out["t2_by_grade"] = stats.t2_by_grade(grades)
    out["t2_grade_correlation"] = stats.t2_grade_correlation(grades)
    _fig(plots.t2_by_grade(grades))
    out["pairs"] = pairs = derive.paired_visit(mri, visit_month)
    out["change"] = stats.change_summary(pairs)
    out["ancova"] = stats.ancova(pairs)
    _fig(plots.baseline_vs_followup(pairs, visit_month))
    out["change_by_visit"] = stats.change_by_visit(derive.paired_visit(mri), skip=(visit_month,))
    out["grade_shift"] = stats.grade_shift(mri, visit_month)
    results.shift_table(out["grade_shift"], visit_month)
    out["worse"] = stats.grade_worsening(mri, visit_month)
    out["corr"] = stats.structure_vs_symptoms(pairs, eff, visit_month)
    _fig(plots.change_scatter(pairs, eff, visit_month))
    # 05 time to response
    tte = ad["adtte"]
    out["km"] = stats.km_summary(tte)
    results.with_ci(out["km"], "median", digits=0, missing="not reached")
    out["turnbull"] = npmle = stats.turnbull(tte)
    results.turnbull_table(npmle)
    _fig(plots.km_response(tte, npmle))
    out["logrank"] = stats.logrank(tte)
    out["cox"] = stats.cox(tte)
    out["cox_adj"] = stats.cox(tte, ["BVAS", "BODI"])
    out["ph"] = stats.ph_test(*stats.fit_cox(tte))
    out["weibull"] = stats.weibull_interval(tte)
    out["status"] = status = derive.status_by_visit(eff)
    out["durability"] = stats.durability(status, from_visit=visit_month, to_visit=config.VISITS[-1])
    _fig(plots.status_grid(status))
    # 06 safety and immunology
    adae, adis = ad["adae"], ad["adis"]
    out["ae_overview"] = stats.ae_overview(adsl, adae)
    results.ae_table(out["ae_overview"], 5)
    out["ae_by_term"] = stats.ae_by_term(adae)
    _fig(plots.ae_onset(adae))
    out["anti_hla_at"] = at = stats.anti_hla_at(adis, immunology_visit)
    out["anti_hla_fisher"] = stats.anti_hla_fisher(at)
    if len(adis):
        out["hla"] = hla = stats.anti_hla_by_visit(adis)
        _fig(
            plots.by_visit(
                hla.rename(columns={"estimate": "mean", "marker": "measure"}),
                {"HLA1": "I", "HLA2": "II", "HLAANY": "Either"},
                y="mean",
                percent=True,
                ncols=3,
            )
        )
        tables.wide_ci(hla.assign(cell=hla["marker"] + " " + hla["group"]), "visit_month", "cell", percent=True)
        out["new_sensitisation"] = stats.new_sensitisation(adis, immunology_visit)
        out["dsa"] = stats.dsa_by_visit(adis)
        out["sensitisation_response"] = stats.sensitisation_and_response(adis, adsl, immunology_visit)
    return out

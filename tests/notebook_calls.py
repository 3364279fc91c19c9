"""Every analysis and figure call of the six notebooks, in notebook order, on one dataset.

:func:`run` mirrors the notebooks' cells (same functions, same arguments) without a kernel, so
property-based tests and scenario checks can assert that nothing raises on a dataset the
validator accepts. It returns the named results, so tests can check their columns.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from respine_nb import config, derive, mmrm, plots, stats, tables  # noqa: E402

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
    """Call every analysis and figure function of the notebooks on ``raw`` (validated tables)."""
    rule = dict(RULE if rule is None else rule)
    out = {}
    ad = derive.derive_all(raw, visit_month, **rule)
    adsl, eff = ad["adsl"], ad["adeff"]
    # 01 cohort
    out["arm_counts"] = stats.arm_counts(adsl)
    out["evaluable"] = stats.arm_counts(adsl, "evalfl")
    out["flow"] = stats.consort_flow(adsl, raw.get("screening"), visit_month=visit_month)
    _fig(plots.consort(out["flow"]))
    out["table1"] = tables.table1(adsl).tableone
    out["completeness"] = stats.follow_up_completeness(eff)
    _fig(plots.completeness_heatmap(out["completeness"]))
    _fig(plots.baseline_distributions(adsl, {"base_vas_pain": "VAS", "base_odi": "ODI", "base_t2_np_ms": "T2"}))
    # 02 primary
    resp_all = derive.responders(raw, visit_month, **rule)
    resp = derive.population(resp_all, population)
    wide = stats.wide_outcomes(raw)
    out["p1"] = p1 = stats.primary_analysis(resp)
    out["site_adjusted"] = stats.logistic_or(resp, covariates=["site"])
    out["composition"] = stats.responder_composition(resp)
    _fig(plots.responders(p1[p1["analysis"] == "responders"], out["composition"], visit_month))
    out["not_evaluable"] = stats.not_evaluable(resp_all)
    out["nri"] = stats.primary_analysis(derive.population(resp_all, "nri"))
    out["treated"] = stats.primary_analysis(derive.population(resp_all, "treated"))
    out["mi"] = stats.mi_risk_difference(wide, visit_month, m=n_imputations, seed=1, **rule)
    out["tipping"] = stats.tipping_point(resp_all)
    _fig(plots.tipping_heatmap(out["tipping"]))
    out["grid"] = stats.threshold_grid(wide, visit_month, odi_rule=rule["odi_rule"])
    chosen = rule["odi_rel"] if rule["odi_rule"] == "relative" else rule.get("odi_abs", config.ODI_ABS)
    _fig(plots.threshold_heatmaps(out["grid"], (rule["vas_abs_mm"], rule["vas_rel"], chosen)))
    levels = derive.subgroup_levels(derive.adsl(raw, visit_month, **rule))
    factors = {"Sex": "sex", "Age": "age_group", "Grade": "grade_group", "Level": "level_group", "VAS": "vas_group"}
    out["subgroups"] = stats.subgroups(resp.merge(levels, on="subject_id"), factors)
    rd = p1[p1["analysis"] == "risk_difference"].iloc[0]
    _fig(plots.forest(out["subgroups"], rd))
    # 03 secondary
    panels = {m: config.MEASURE_LABELS[m] for m in config.MEASURES}
    out["trajectories"] = stats.trajectories(eff)
    _fig(plots.by_visit(out["trajectories"], panels, ylabel="mean"))
    tables.wide_ci(out["trajectories"][out["trajectories"]["measure"] == "vas_pain"], "visit_month", "group", estimate="mean")
    _fig(plots.spaghetti(eff, "vas_pain", per_arm=5, seed=1))
    if with_mmrm:
        mm = pd.concat([mmrm.mmrm(eff, m) for m in config.MEASURES], ignore_index=True)
        out["mmrm"] = mm
        _fig(plots.lsmeans_change(mm, panels))
    out["mcid"] = stats.mcid_proportions(eff)
    _fig(plots.by_visit(out["mcid"].rename(columns={"estimate": "mean"}), {m: m for m in config.MCID}, y="mean", percent=True))
    out["responders_by_visit"] = stats.responders_by_visit(eff)
    _fig(
        plots.by_visit(
            out["responders_by_visit"].assign(measure="responder").rename(columns={"estimate": "mean"}),
            {"responder": "Responders"},
            y="mean",
            percent=True,
        )
    )
    out["anova"] = pd.concat(
        [stats.mixed_anova_completers(eff, m).assign(measure=m) for m in ("vas_pain", "odi")], ignore_index=True
    )
    # 04 MRI
    mri = ad["admri"]
    out["t2_by_grade"] = stats.t2_by_grade(mri, 0)
    out["t2_grade_correlation"] = stats.t2_grade_correlation(mri, 0)
    _fig(plots.t2_by_grade(mri, 0))
    out["pairs"] = pairs = stats.paired_visit(mri, visit_month)
    out["change"] = stats.change_summary(pairs)
    out["ancova"] = stats.ancova(pairs)
    _fig(plots.baseline_vs_followup(pairs, visit_month))
    for v in sorted(mri["visit_month"].unique()):
        if v not in (0, visit_month):
            p = stats.paired_visit(mri, v)
            stats.change_summary(p)
            stats.ancova(p)
    out["grade_shift"] = stats.grade_shift(mri, visit_month)
    out["worse"] = stats.grade_worsening(mri, visit_month)
    out["corr"] = stats.structure_vs_symptoms(pairs, eff, visit_month)
    _fig(plots.change_scatter(pairs, eff, visit_month))
    # 05 time to response
    long = derive.responders_long(raw, **rule)
    tte = derive.adtte(raw, long, **rule)
    eff5 = derive.adeff(raw, long, **rule)
    out["km"] = stats.km_summary(tte)
    out["turnbull"] = npmle = stats.turnbull(tte)
    _fig(plots.km_response(tte, npmle))
    out["logrank"] = stats.logrank(tte)
    out["cox"] = stats.cox(tte)
    out["cox_adj"] = stats.cox(tte, ["base_vas", "base_odi"])
    out["ph"] = stats.ph_test(*stats.fit_cox(tte))
    out["weibull"] = stats.weibull_interval(tte)
    out["status"] = status = stats.status_by_visit(eff5)
    out["durability"] = stats.durability(status)
    _fig(plots.status_grid(status))
    # 06 safety and immunology
    adae = ad["adae"]
    out["ae_overview"] = stats.ae_overview(adsl, adae)
    out["ae_by_term"] = stats.ae_by_term(adae)
    _fig(plots.ae_onset(adae))
    if "immunology" in raw and len(raw["immunology"]):
        imm, subjects = raw["immunology"], raw["subjects"]
        out["hla"] = hla = stats.anti_hla_by_visit(imm, subjects)
        _fig(
            plots.by_visit(
                hla.rename(columns={"estimate": "mean", "marker": "measure"}),
                {"class_i": "I", "class_ii": "II", "any": "Either"},
                y="mean",
                percent=True,
                ncols=3,
            )
        )
        tables.wide_ci(hla.assign(cell=hla["marker"] + " " + hla["group"]), "visit_month", "cell", percent=True)
        out["new_sensitisation"] = stats.new_sensitisation(imm, subjects, immunology_visit)
        out["dsa"] = stats.dsa_by_visit(imm, subjects)
        out["sensitisation_response"] = stats.sensitisation_and_response(
            imm, derive.responders(raw, config.PRIMARY_VISIT), immunology_visit
        )
    return out

"""One function per analysis, each returning a tidy DataFrame; one module per topic.

=============== ==========================================================================
module          its analyses
=============== ==========================================================================
``cohort``      CONSORT flow counts, follow-up completeness, participants per arm
``binary``      proportions, Wilson / Newcombe intervals, Yates and Fisher tests, logistic
                odds ratios, the primary responder analysis, proportions by visit (and the
                helpers every module shares: ``not_estimable``, ``arms_without``, ``z_quantile``)
``estimands``   covariate-adjusted primary analyses (CMH, g-computation risk difference), Holm
``missing``     multiple imputation (MICE, predictive mean matching), Rubin's rules with
                Barnard-Rubin df, Monte Carlo error, delta-adjusted (MNAR) imputation
``reference_based`` reference-based multiple imputation (jump to reference, copy reference)
``sensitivity`` tipping point, responder-threshold grid, subgroups
``continuous``  means with t intervals, trajectories, the completers' mixed ANOVA
``mri``         T2 by grade, change from baseline, ANCOVA, grade shifts, structure vs symptoms
``survival``    Kaplan-Meier, log-rank, Cox (``cox`` rows, ``fit_cox`` the fitted model),
                Turnbull NPMLE, Weibull AFT, durability
``safety``      adverse events, anti-HLA and donor-specific antibodies
=============== ==========================================================================

The return contract: every analysis function returns a tidy DataFrame whose columns carry the
results contract's names where they apply (``group``, ``visit_month``, ``estimate``, ``ci_low``,
``ci_high``, ``p_value``, ``n``, ``method``); nothing is kept in ``DataFrame.attrs``; a row that
cannot be estimated is still returned, NaN with the reason in ``method``. Functions that return a
fitted model are named ``fit_*``. A few small numeric helpers (``wilson_ci``, ``newcombe_ci``,
``yates_chisq``, ``counts``, ``risk_difference_values``, ``rubin``, ``mean_ci``, ``correlation``,
``interaction_p``, ``km_median``) return plain numbers, tuples or dicts, as documented.

Functions take analysis datasets (from :mod:`respine_nb.derive`) or plain arrays, never read or
write files and never mutate their input. Every public name of every module is re-exported here,
so notebooks call ``stats.<function>``.

A module is imported when one of its names is first used (PEP 562 module ``__getattr__``), so a
notebook pays for lifelines, pingouin or the MMRM only if it calls an analysis that needs them;
``dir(stats)`` and tab completion list every name from the start. :data:`EXPORTS` lists each
module's ``__all__`` (a test checks that they agree).
"""

from __future__ import annotations

import importlib

MODULE_NAMES = (
    "cohort",
    "binary",
    "estimands",
    "missing",
    "reference_based",
    "sensitivity",
    "continuous",
    "mri",
    "survival",
    "safety",
)

# module -> its public names (its __all__)
EXPORTS = {
    "cohort": ("consort_flow", "follow_up_completeness", "arm_counts", "discontinued", "STAGE_LABELS", "consort_table"),
    "binary": (
        "NOT_ESTIMABLE",
        "not_estimable",
        "not_estimable_row",
        "arms_without",
        "Z95",
        "z_quantile",
        "wilson_ci",
        "relabel_method",
        "METHOD_NAMES",
        "covariate_text",
        "truth",
        "proportions",
        "compare_by_visit",
        "mcid_by_visit",
        "counts",
        "yates_chisq",
        "newcombe_ci",
        "risk_difference_values",
        "risk_difference",
        "fisher_exact",
        "SMALL_SITE",
        "POOLED_SITES",
        "site_strata",
        "is_separated",
        "logistic_or",
        "primary_analysis",
        "responder_composition",
        "not_evaluable",
        "mcid_proportions",
        "responders_by_visit",
        "compare_proportions",
    ),
    "estimands": ("cmh", "fit_adjusted_logistic", "adjusted_risk_difference", "holm"),
    "missing": (
        "MEASURE_PREFIXES",
        "rubin",
        "pooled_inference",
        "mc_error",
        "mi_delta_risk_difference",
        "mice_pmm",
        "mi_risk_difference",
    ),
    "reference_based": ("STRATEGIES", "fit_mvn_em", "mi_reference_based", "reference_based_by_measure"),
    "sensitivity": (
        "TIPPING_MAX_STEPS",
        "tipping_point",
        "VAS_ABS_GRID",
        "VAS_REL_GRID",
        "ODI_REL_GRID",
        "ODI_ABS_GRID",
        "threshold_grid",
        "subgroups",
        "subgroup_interactions",
        "interaction_p",
    ),
    "continuous": ("mean_ci", "trajectories", "mixed_anova_completers", "means_by_arm", "means_by_measure"),
    "mri": (
        "images_by_visit",
        "t2_by_grade",
        "t2_grade_correlation",
        "change_summary",
        "ancova",
        "change_by_visit",
        "grade_shift",
        "grade_worsening",
        "correlation",
        "structure_vs_symptoms",
        "t2_mmrm",
    ),
    "survival": (
        "km_median",
        "km_summary",
        "logrank",
        "cox",
        "fit_cox",
        "ph_test",
        "turnbull_npmle",
        "turnbull",
        "weibull_interval",
        "durability",
    ),
    "safety": (
        "AE_CATEGORIES",
        "ae_overview",
        "ae_by_term",
        "anti_hla_by_visit",
        "ANTI_HLA_METHOD",
        "anti_hla_at",
        "anti_hla_fisher",
        "new_sensitisation",
        "dsa_by_visit",
        "sensitisation_and_response",
        "AE_CONTRASTS",
        "ae_flags",
        "ae_contrasts",
        "suppress_with_contrast",
        "safety_events",
    ),
}

_OWNER = {name: module for module, names in EXPORTS.items() for name in names}

__all__ = [name for module in MODULE_NAMES for name in EXPORTS[module]]


def __getattr__(name: str):
    if name in MODULE_NAMES:
        return importlib.import_module(f"{__name__}.{name}")
    if name not in _OWNER:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_OWNER[name]}"), name)
    globals()[name] = value  # imported once: later uses are plain attribute reads
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(__all__) | set(MODULE_NAMES))

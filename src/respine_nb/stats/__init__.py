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
``dir(stats)`` and tab completion list every name from the start. :data:`EXPORTS` holds each
module's ``__all__``, read from its source.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

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


def _public_names(module: str) -> list:
    """The module's ``__all__`` (a list literal at the start of a line), read from its source
    without importing the module: importing it is the cost this package defers."""
    text = (Path(__file__).with_name(f"{module}.py")).read_text(encoding="utf-8")
    start = text.index("\n__all__ = [") + len("\n__all__ = ")
    return ast.literal_eval(text[start : text.index("]", start) + 1])


EXPORTS = {module: _public_names(module) for module in MODULE_NAMES}  # module -> its public names
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

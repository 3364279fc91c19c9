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
"""

from __future__ import annotations

from . import binary, cohort, continuous, estimands, missing, mri, reference_based, safety, sensitivity, survival
from .binary import *  # noqa: F403
from .cohort import *  # noqa: F403
from .continuous import *  # noqa: F403
from .estimands import *  # noqa: F403
from .missing import *  # noqa: F403
from .mri import *  # noqa: F403
from .reference_based import *  # noqa: F403
from .safety import *  # noqa: F403
from .sensitivity import *  # noqa: F403
from .survival import *  # noqa: F403

MODULES = (cohort, binary, estimands, missing, reference_based, sensitivity, continuous, mri, survival, safety)

__all__ = [name for module in MODULES for name in module.__all__]

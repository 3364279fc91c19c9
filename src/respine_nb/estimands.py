"""The estimands of each notebook, stated with the five attributes of ICH E9(R1).

An estimand says what a number estimates before any method is chosen: the treatment compared, the
population, the variable (endpoint), how each intercurrent event is handled (its strategy), and the
population-level summary. :func:`table` builds that statement from the run's parameters (the visit,
the responder rule, the headline population and, for the primary endpoint, the strategy for spine
surgery or another spinal injection), so the text never claims a visit or rule the run did not use.
Each row names the ``analysis_id`` rows of results.csv that estimate it.
"""

from __future__ import annotations

import pandas as pd

from . import config, parameters

__all__ = ["COLUMNS", "STRATEGY_TEXT", "table", "markdown", "multiplicity"]

COLUMNS = ["estimand", "role", "treatment", "population", "variable", "intercurrent_events", "summary", "analysis_id"]

TREATMENT = "one intradiscal injection of 20 million allogeneic bone-marrow MSCs vs a sham procedure (no disc puncture)"
POPULATION = "adults with chronic low back pain from single-level degenerative disc disease"

STRATEGY_TEXT = {
    "treatment_policy": "treatment policy (outcomes used as observed, whatever happened before)",
    "composite": "composite (the participant counts as a non-responder)",
    "hypothetical": "hypothetical (outcomes after the event set missing and imputed, as if it had not happened)",
}
RESCUE = "rescue medication: treatment policy"
NOT_RECEIVED = "procedure not received: treatment policy (analysed as randomised)"
DROPOUT = {
    "evaluable": "leaving the study or missing the visit (missing data): complete case, i.e. assumed unrelated to the outcome",
    "nri": "leaving the study or missing the visit: composite (counted as a non-responder)",
    "treated": "leaving the study or missing the visit: complete case, and participants who did not receive the procedure "
    "are left out (a per-protocol estimand, not ITT)",
}


def _row(estimand, role, population, variable, events, summary, analysis_id) -> dict:
    return dict(
        estimand=estimand,
        role=role,
        treatment=TREATMENT,
        population=population,
        variable=variable,
        intercurrent_events="; ".join(events),
        summary=summary,
        analysis_id=analysis_id,
    )


def _primary(values: dict) -> list[dict]:
    visit = values.get("visit_month", config.PRIMARY_VISIT)
    population = values.get("population", config.POPULATIONS[0])
    strategy = values.get("ice_strategy", config.ICE_STRATEGIES[0])
    variable = f"response at month {visit} ({parameters.rule_text(values)})"
    surgery = f"spine surgery or another spinal injection before month {visit}: "
    summary = "difference in the proportion of responders, BM-MSC minus sham"
    randomised = f"{POPULATION}, as randomised"
    head_population = {
        "evaluable": f"{POPULATION}, evaluable at month {visit}",
        "nri": randomised,
        "treated": f"{POPULATION}, who received the allocated procedure",
    }[population]
    id_of = {"treatment_policy": "primary.risk_difference", "composite": "primary.composite.risk_difference"}
    rows = [
        _row(
            "Primary",
            "primary",
            randomised if strategy == "hypothetical" else head_population,
            variable,
            [surgery + STRATEGY_TEXT[strategy], RESCUE, NOT_RECEIVED, DROPOUT[population]],
            summary,
            id_of.get(strategy, "primary.hypothetical.risk_difference")
            if population == "evaluable"
            else {"nri": "primary.nri.risk_difference", "treated": "primary.treated.risk_difference"}[population],
        )
    ]
    for other in config.ICE_STRATEGIES:
        if other == strategy:
            continue
        rows.append(
            _row(
                f"Supplementary: {other.replace('_', ' ')} strategy",
                "supplementary",
                randomised if other == "hypothetical" else head_population,
                variable,
                [surgery + STRATEGY_TEXT[other], RESCUE, NOT_RECEIVED, DROPOUT[population]],
                summary,
                id_of.get(other, "primary.hypothetical.risk_difference"),
            )
        )
    rows += [
        _row(
            "Supplementary: missing at random",
            "supplementary",
            randomised,
            variable,
            [
                surgery + STRATEGY_TEXT["treatment_policy"],
                RESCUE,
                "leaving the study or missing the visit: hypothetical (as if followed up, multiple imputation under "
                "missing at random)",
            ],
            summary,
            "primary.mi.risk_difference",
        ),
        _row(
            "Sensitivity: BM-MSC dropouts did worse (MNAR)",
            "sensitivity",
            randomised,
            variable,
            [
                RESCUE,
                "leaving the study or missing the visit: imputed as under missing at random, then the BM-MSC "
                "participants' imputed VAS made worse by D mm and ODI by D/2 points (delta adjustment)",
            ],
            summary,
            "primary.mi_delta_D.risk_difference",
        ),
        _row(
            "Same estimand, adjusted estimator",
            "supplementary",
            f"{POPULATION}, evaluable at month {visit}, with both baseline scores",
            variable,
            [surgery + STRATEGY_TEXT["treatment_policy"], RESCUE, DROPOUT["evaluable"]],
            summary + ", standardised over site and baseline VAS and ODI (g-computation)",
            "primary.adjusted.risk_difference",
        ),
    ]
    return rows


def _secondary(values: dict) -> list[dict]:
    population = f"{POPULATION}, with a baseline and at least one later value of the measure"
    events = [
        "rescue medication, spine surgery or another spinal injection: treatment policy",
        "leaving the study: hypothetical (as if followed up, MMRM under missing at random)",
    ]
    summary = "difference in mean change from baseline, BM-MSC minus sham (least-squares means)"
    rows = [
        _row(
            "Primary for the secondary endpoints",
            "primary",
            population,
            "change from baseline in VAS, ODI, SF-36 PCS and MCS at each visit",
            events,
            summary,
            "secondary.mmrm.<measure>",
        ),
        _row(
            "Supplementary: jump to reference",
            "sensitivity",
            f"{POPULATION}, as randomised, with a baseline value",
            f"change from baseline in VAS and ODI at month {values.get('visit_month', config.PRIMARY_VISIT)}",
            [
                "rescue medication, spine surgery or another spinal injection: treatment policy",
                "leaving the study: BM-MSC participants assumed to lose any benefit and behave like sham afterwards "
                "(reference-based multiple imputation, jump to reference)",
            ],
            "difference in mean change, BM-MSC minus sham (ANCOVA on baseline, Rubin's rules)",
            "secondary.mmrm_j2r.<measure>",
        ),
    ]
    return rows


def _mri(values: dict) -> list[dict]:
    visit = values.get("visit_month", config.PRIMARY_VISIT)
    return [
        _row(
            "Structural co-primary",
            "primary",
            f"{POPULATION}, with MRI at month 0 and month {visit}",
            f"change in T2 relaxation time of the nucleus pulposus (ms) from month 0 to month {visit}",
            [
                "rescue medication, spine surgery or another spinal injection: treatment policy",
                "missing MRI: complete case",
            ],
            "difference in mean change adjusted for baseline T2 (ANCOVA), BM-MSC minus sham",
            "mri.t2.ancova",
        ),
        _row(
            "Supplementary: every MRI visit",
            "supplementary",
            f"{POPULATION}, with a baseline MRI and at least one later one",
            "change in T2 at each post-baseline MRI visit",
            [
                "rescue medication, spine surgery or another spinal injection: treatment policy",
                "missing MRI: hypothetical (MMRM under missing at random, site as a stratum)",
            ],
            "difference in least-squares mean change, BM-MSC minus sham",
            "mri.t2.mmrm",
        ),
    ]


def _time_to_response(values: dict) -> list[dict]:
    return [
        _row(
            "Time to first response",
            "supplementary",
            f"{POPULATION}, with at least one evaluable visit after baseline",
            f"months to the first visit at which the participant is a responder ({parameters.rule_text(values)})",
            [
                "rescue medication, spine surgery or another spinal injection: treatment policy",
                "leaving the study: censored at the last evaluable visit (assumed unrelated to the chance of response)",
            ],
            "hazard ratio of first response, BM-MSC over sham (Cox); median times per arm",
            "ttr.cox_hr",
        )
    ]


BUILDERS = {
    "02_primary_endpoint": _primary,
    "03_secondary_endpoints": _secondary,
    "04_mri_t2": _mri,
    "05_time_to_response": _time_to_response,
}


def table(notebook: str, values: dict | None = None) -> pd.DataFrame:
    """The estimands a notebook estimates, one row each, stated for the run's parameters.

    Parameters
    ----------
    notebook : str
        Notebook name, e.g. ``"02_primary_endpoint"`` (those in :data:`BUILDERS`).
    values : dict, optional
        The run's parameters (missing ones take their defaults): ``visit_month``, the
        responder rule, ``population``, ``ice_strategy``.

    Returns
    -------
    pandas.DataFrame
        Columns ``estimand``, ``role`` (primary, supplementary or sensitivity), ``treatment``,
        ``population``, ``variable``, ``intercurrent_events`` (each event and its strategy,
        separated by "; "), ``summary`` (population-level summary) and ``analysis_id`` (the
        results.csv rows that estimate it; ``<measure>`` and ``D`` stand for their values).

    Raises
    ------
    KeyError
        For a notebook without estimands.
    """
    values = parameters.defaults() | dict(values or {})
    return pd.DataFrame(BUILDERS[notebook](values), columns=COLUMNS)


def markdown(estimands: pd.DataFrame) -> str:
    """The estimand table as Markdown: one block per estimand with its five attributes.

    Parameters
    ----------
    estimands : pandas.DataFrame
        As returned by :func:`table`.

    Returns
    -------
    str
    """
    blocks = []
    for r in estimands.itertuples(index=False):
        events = "".join(f"\n  - {e}" for e in r.intercurrent_events.split("; "))
        blocks.append(
            f"**{r.estimand}** (results: `{r.analysis_id}`)\n\n"
            f"- Treatment: {r.treatment}\n- Population: {r.population}\n- Variable: {r.variable}\n"
            f"- Intercurrent events:{events}\n- Population-level summary: {r.summary}"
        )
    return "\n\n".join(blocks)


def multiplicity(notebook: str) -> str:
    """What the notebook's tests may claim, said plainly (the co-primary rule; descriptive secondaries).

    Parameters
    ----------
    notebook : str
        Notebook name.

    Returns
    -------
    str
        Markdown, empty for a notebook without tests to qualify.
    """
    coprimary = (
        "**Multiplicity.** RESPINE has two co-primary endpoints, response (this notebook's P1) and the "
        "structural change in T2 (04), each tested at two-sided 5 % without adjustment, as the paper did. "
        "The protocol does not state a decision rule combining them; read strictly, an efficacy claim needs "
        "both, since either one alone could be the chance finding the 5 % allows."
    )
    descriptive = (
        "**Multiplicity.** Every between-arm contrast here is descriptive: about forty secondary "
        "comparisons are made with no control of the family-wise error, so the tables show Holm-adjusted "
        "p-values beside the raw ones, and a raw p below 0.05 is not evidence by itself."
    )
    return {
        "02_primary_endpoint": coprimary,
        "04_mri_t2": coprimary.replace("this notebook's P1", "02").replace("(04)", "(this notebook)"),
        "03_secondary_endpoints": descriptive,
        "05_time_to_response": descriptive,
        "06_safety_immunology": descriptive,
    }.get(notebook, "")

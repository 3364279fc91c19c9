"""The cohort: CONSORT flow counts, follow-up completeness, participants per arm."""

from __future__ import annotations

import pandas as pd

from .. import config

__all__ = [
    "consort_flow",
    "follow_up_completeness",
    "arm_counts",
    "discontinued",
    "STAGE_LABELS",
    "consort_table",
]


def consort_flow(
    adsl: pd.DataFrame,
    adds: pd.DataFrame | None = None,
    visit_month: int = config.PRIMARY_VISIT,
    adeff: pd.DataFrame | None = None,
    admri: pd.DataFrame | None = None,
    adtte: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Counts of the CONSORT 2010 flow diagram.

    Parameters
    ----------
    adsl : DataFrame
        Subject-level dataset (``ARM``, ``TRTFL``, ``DCSMON``, ``DCSREAS``, ``EVALFL``, ``NEREAS``).
    adds : DataFrame, optional
        The screening log (ADDS: ``DSDECOD``, ``DSREAS``); without it, or without rows, the flow
        starts at randomisation.
    visit_month : int
        The visit of the primary analysis (``EVALFL`` refers to it).
    adeff, admri, adtte : DataFrame, optional
        The efficacy, MRI and time-to-event datasets: with ``adeff``, the month-24 box counts the
        participants actually seen then, and the VAS MMRM gets its analysed n; ``admri`` and
        ``adtte`` add the analysed n of the T2 change and of the time to response.

    Returns
    -------
    pandas.DataFrame
        Columns ``stage``, ``group`` (an arm or ``all``), ``reason`` (empty for totals), ``n``,
        ``visit_month`` (the visit the ``analysed`` and ``not_evaluable`` counts refer to; the
        same on every row). Stages: screened, excluded, randomized, allocated, treated,
        not_treated, discontinued (at any time), analysed, not_evaluable, and the follow-up
        split at the primary visit (:data:`respine_nb.plots.CONSORT_SPLIT_STAGES`):
        ``discontinued_before`` (``DCSMON`` <= ``visit_month``, with reasons),
        ``discontinued_between`` (``visit_month`` < ``DCSMON`` <= the last scheduled visit,
        month 24, with reasons), ``followed_up_last`` (not discontinued by month 24 and, when
        ``adeff`` is given, with a VAS or ODI value at month 24: 0 when nobody reached it),
        ``analysed_endpoint`` (one row per endpoint, ``reason`` = its label: responders at the
        primary visit (``EVALFL``); VAS MMRM (a baseline and >= 1 post-baseline VAS); T2 change
        at the primary visit (T2NP baseline and value); time to first response (ADTTE rows)).
        Reasons are sorted by decreasing count, then alphabetically.
    """
    rows = []

    def add(stage, group, n, reason=""):
        rows.append((stage, group, reason, int(n)))

    def reasons(stage, group, series):
        counts = series.value_counts()
        for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0]))):
            add(stage, group, n, str(reason))

    last = config.VISITS[-1]
    seen_last = set() if adeff is None else _observed(adeff, ("VAS", "ODI"), [last])
    endpoints = _endpoint_ids(adsl, visit_month, adeff, admri, adtte)
    if adds is not None and len(adds):
        add("screened", "all", len(adds))
        excl = adds.loc[adds["DSDECOD"] == "excluded", "DSREAS"]
        add("excluded", "all", len(excl))
        reasons("excluded", "all", excl)
    add("randomized", "all", len(adsl))
    for arm in config.ARMS:
        a = adsl[adsl["ARM"] == arm]
        treated = a["TRTFL"] == "Y"
        add("allocated", arm, len(a))
        add("treated", arm, treated.sum())
        add("not_treated", arm, (~treated).sum())
        disc = a["DCSMON"].notna()
        add("discontinued", arm, disc.sum())
        reasons("discontinued", arm, a.loc[disc, "DCSREAS"])
        ev = a["EVALFL"] == "Y"
        add("analysed", arm, ev.sum())
        add("not_evaluable", arm, (~ev).sum())
        reasons("not_evaluable", arm, a.loc[~ev, "NEREAS"])
    for arm in config.ARMS:
        a = adsl[adsl["ARM"] == arm]
        month = pd.to_numeric(a["DCSMON"], errors="coerce").astype(float)  # NaN: did not leave
        before, between = (month <= visit_month).to_numpy(bool), ((month > visit_month) & (month <= last)).to_numpy(bool)
        add("discontinued_before", arm, before.sum())
        reasons("discontinued_before", arm, a.loc[before, "DCSREAS"])
        add("discontinued_between", arm, between.sum())
        reasons("discontinued_between", arm, a.loc[between, "DCSREAS"])
        stayed = set(a.loc[~(month <= last).to_numpy(bool), "USUBJID"])
        add("followed_up_last", arm, len(stayed if adeff is None else stayed & seen_last))
        for label, ids in endpoints.items():
            add("analysed_endpoint", arm, a["USUBJID"].isin(ids).sum(), label)
    out = pd.DataFrame(rows, columns=["stage", "group", "reason", "n"])
    out["visit_month"] = int(visit_month)
    return out


def _observed(adeff: pd.DataFrame, params, visits) -> set:
    """Participants with a value of one of ``params`` at one of ``visits``."""
    d = adeff[adeff["PARAMCD"].isin(list(params)) & adeff["AVISITN"].isin(list(visits)) & adeff["AVAL"].notna()]
    return set(d["USUBJID"])


def _endpoint_ids(adsl, visit_month, adeff, admri, adtte) -> dict:
    """Endpoint label -> the participants its analysis uses (see :func:`consort_flow`)."""
    out = {f"responders, month {visit_month}": set(adsl.loc[adsl["EVALFL"] == "Y", "USUBJID"])}
    if adeff is not None:
        out["VAS MMRM, all visits"] = _observed(adeff, ["VAS"], [0]) & _observed(adeff, ["VAS"], config.POST_BASELINE_VISITS)
    if admri is not None:
        t2 = admri[(admri["PARAMCD"] == "T2NP") & (admri["AVISITN"] == visit_month)]
        out[f"T2 change, month {visit_month}"] = set(t2.loc[t2["AVAL"].notna() & t2["BASE"].notna(), "USUBJID"])
    if adtte is not None:
        out["time to first response"] = set(adtte.loc[adtte["AVAL"].notna(), "USUBJID"])
    return out


def follow_up_completeness(adeff: pd.DataFrame) -> pd.DataFrame:
    """Share of randomised participants with an outcome assessment (VAS or ODI) per arm and visit.

    Parameters
    ----------
    adeff : DataFrame
        The efficacy dataset (``VAS`` and ``ODI`` records, VISSTAT).

    Returns
    -------
    pandas.DataFrame
        Columns ``arm``, ``visit_month``, ``n_randomized``, ``n_observed``,
        ``n_discontinued`` (left the study before the visit), ``proportion``
        (n_observed / n_randomized). Sorted by arm (config order), visit.
    """
    d = adeff[adeff["PARAMCD"].isin(["VAS", "ODI"])]
    per = (
        d.assign(has=d["AVAL"].notna().to_numpy(dtype=bool))
        .groupby(["ARM", "AVISITN", "USUBJID"], sort=True)
        .agg(has=("has", "any"), status=("VISSTAT", "first"))
        .reset_index()
        .rename(columns={"ARM": "arm", "AVISITN": "visit_month"})
    )
    out = (
        per.groupby(["arm", "visit_month"], sort=True)
        .agg(
            n_randomized=("USUBJID", "size"),
            n_observed=("has", "sum"),
            n_discontinued=("status", lambda s: int((s == "discontinued").sum())),
        )
        .reset_index()
    )
    out["proportion"] = out["n_observed"] / out["n_randomized"]
    out["arm"] = pd.Categorical(out["arm"], categories=list(config.ARMS), ordered=True)
    out = out.sort_values(["arm", "visit_month"]).reset_index(drop=True)
    out["arm"] = out["arm"].astype(str)
    return out


def arm_counts(adsl: pd.DataFrame, flag: str | None = None) -> pd.DataFrame:
    """Participants per arm, all randomised or those with ``flag`` ``"Y"``.

    Parameters
    ----------
    adsl : DataFrame
        A dataset with one row per participant and ``ARM`` (ADSL; ADTTE works too).
    flag : str, optional
        A ``"Y"``/``"N"`` flag (e.g. ``EVALFL``, ``SAFFL``).

    Returns
    -------
    pandas.DataFrame
        Columns ``group`` (arm), ``n``, ``estimate`` (= n).
    """
    d = adsl if flag is None else adsl[adsl[flag] == "Y"]
    n = d.groupby("ARM").size().reindex(list(config.ARMS), fill_value=0)
    return pd.DataFrame({"group": list(config.ARMS), "n": n.to_numpy(), "estimate": n.to_numpy().astype(float)})


def discontinued(adsl: pd.DataFrame, visits=(config.PRIMARY_VISIT, 24), month: str = "DCSMON", by: str = "ARM") -> pd.DataFrame:
    """Participants who left the study at or before each visit, per arm (``cohort.discontinued``).

    Parameters
    ----------
    adsl : pandas.DataFrame
        One row per randomised participant; ``month`` is the discontinuation month (empty for
        those who did not leave).
    visits : sequence of int
        The visits (months).
    month, by : str
        The discontinuation-month and arm columns.

    Returns
    -------
    pandas.DataFrame
        Columns ``visit_month``, ``group`` (arm), ``estimate`` (count with ``month`` <= visit),
        ``n`` (randomised in the arm).
    """
    rows = []
    for v in sorted(visits):
        for arm in config.ARMS:
            d = adsl[adsl[by] == arm]
            left = int((pd.to_numeric(d[month], errors="coerce") <= v).sum())
            rows.append({"visit_month": v, "group": arm, "estimate": float(left), "n": len(d)})
    return pd.DataFrame(rows, columns=["visit_month", "group", "estimate", "n"])


STAGE_LABELS = {
    "screened": "Assessed for eligibility",
    "excluded": "Excluded",
    "randomized": "Randomised",
    "allocated": "Allocated",
    "treated": "Received the allocated procedure",
    "not_treated": "Did not receive the allocated procedure",
    "discontinued": "Discontinued (any time)",
    "analysed": "Analysed at the primary visit (evaluable)",
    "not_evaluable": "Not evaluable at the primary visit",
    "discontinued_before": "Discontinued at or before the primary visit",
    "discontinued_between": "Discontinued between the primary visit and the last visit",
    "followed_up_last": "Followed up to the last visit",
    "analysed_endpoint": "Analysed, by endpoint",
}


def consort_table(flow: pd.DataFrame) -> pd.DataFrame:
    """The CONSORT counts for reading: each stage named in words (:data:`STAGE_LABELS`).

    Parameters
    ----------
    flow : pandas.DataFrame
        :func:`consort_flow`.

    Returns
    -------
    pandas.DataFrame
        Columns ``stage`` (in words), ``group``, ``reason``, ``n``; the flow's order.
    """
    out = flow[["stage", "group", "reason", "n"]].copy()
    out["stage"] = out["stage"].map(STAGE_LABELS).fillna(out["stage"])
    return out

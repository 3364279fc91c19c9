"""The cohort: CONSORT flow counts, follow-up completeness, participants per arm."""

from __future__ import annotations

import pandas as pd

from .. import config

__all__ = [
    "consort_flow",
    "follow_up_completeness",
    "arm_counts",
    "discontinued",
]


def consort_flow(adsl: pd.DataFrame, adds: pd.DataFrame | None = None, visit_month: int = config.PRIMARY_VISIT) -> pd.DataFrame:
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

    Returns
    -------
    pandas.DataFrame
        Columns ``stage`` (screened, excluded, randomized, allocated, treated,
        not_treated, discontinued, analysed, not_evaluable), ``group`` (an arm or
        ``all``), ``reason`` (empty for totals), ``n``, ``visit_month`` (the visit the
        ``analysed`` and ``not_evaluable`` counts refer to; the same on every row). Reasons are
        sorted by decreasing count, then alphabetically.
    """
    rows = []

    def add(stage, group, n, reason=""):
        rows.append((stage, group, reason, int(n)))

    def reasons(stage, group, series):
        counts = series.value_counts()
        for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0]))):
            add(stage, group, n, str(reason))

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
    out = pd.DataFrame(rows, columns=["stage", "group", "reason", "n"])
    out["visit_month"] = int(visit_month)
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

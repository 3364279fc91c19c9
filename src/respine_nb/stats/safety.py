"""Safety and immunology: adverse events, anti-HLA antibodies, donor-specific antibodies."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import config
from .binary import compare_proportions, fisher_exact, not_estimable, proportions, relabel_method, wilson_ci

__all__ = [
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
]


AE_CATEGORIES = {
    "any_ae": ("any adverse event", lambda ae: np.ones(len(ae), dtype=bool)),
    "sae": ("any serious adverse event", lambda ae: (ae["AESER"] == "Y").to_numpy(dtype=bool)),
    "related_ae": ("any related adverse event", lambda ae: (ae["AEREL"] == "Y").to_numpy(dtype=bool)),
    "related_sae": (
        "any related serious adverse event",
        lambda ae: ((ae["AESER"] == "Y") & (ae["AEREL"] == "Y")).to_numpy(dtype=bool),
    ),
}


def _emergent(adae: pd.DataFrame) -> pd.DataFrame:
    """The treatment-emergent events of the safety population (TRTEMFL)."""
    return adae[adae["TRTEMFL"] == "Y"] if len(adae) else adae


def ae_overview(adsl: pd.DataFrame, adae: pd.DataFrame) -> pd.DataFrame:
    """Participants of the safety population (SAFFL) with at least one treatment-emergent event of
    each kind, per arm.

    Parameters
    ----------
    adsl, adae : DataFrame
        The subject-level dataset (``SAFFL``) and the adverse events (``TRTEMFL``, ``AESER``, ``AEREL``).

    Returns
    -------
    pandas.DataFrame
        One row per kind and arm: ``category`` (any_ae, sae, related_ae, related_sae),
        ``label``, ``group``, ``events`` (participants with >= 1 such event), ``n`` (treated),
        ``estimate`` (proportion), ``ci_low``, ``ci_high`` (Wilson), ``n_events`` (events),
        ``method``.
    """
    safety = adsl[adsl["SAFFL"] == "Y"]
    ae = _emergent(adae)
    rows = []
    for key, (label, select) in AE_CATEGORIES.items():
        hit = ae[select(ae)] if len(ae) else ae
        for arm in config.ARMS:
            ids = set(safety.loc[safety["ARM"] == arm, "USUBJID"])
            who = set(hit.loc[hit["ARM"] == arm, "USUBJID"]) & ids if len(hit) else set()
            n, x = len(ids), len(who)
            lo, hi = wilson_ci(x, n)
            method = "participants with >= 1 event / treated; Wilson CI"
            rows.append(
                {
                    "category": key,
                    "label": label,
                    "group": arm,
                    "events": x,
                    "n": n,
                    "estimate": x / n if n else np.nan,
                    "ci_low": lo,
                    "ci_high": hi,
                    "n_events": int((hit["ARM"] == arm).sum()) if len(hit) else 0,
                    "method": method if n else not_estimable(method, f"no treated participant in {arm}"),
                }
            )
    return pd.DataFrame(rows)


def ae_by_term(adae: pd.DataFrame) -> pd.DataFrame:
    """Treatment-emergent events by preferred term and arm: participants, events and events by severity.

    Parameters
    ----------
    adae : DataFrame
        The adverse events (``TRTEMFL``, ``AEDECOD``, ``AESEV``, ``AESER``, ``AEREL``).

    Returns
    -------
    pandas.DataFrame
        Columns ``term``, ``group``, ``participants``, ``events``, ``mild``, ``moderate``,
        ``severe``, ``serious``, ``related``; sorted by total participants (descending), term.
    """
    cols = ["term", "group", "participants", "events", *config.SEVERITIES, "serious", "related"]
    ae = _emergent(adae)
    if not len(ae):
        return pd.DataFrame(columns=cols)
    rows = []
    for (term, arm), g in ae.groupby(["AEDECOD", "ARM"], sort=True):
        sev = g["AESEV"].value_counts()
        rows.append(
            {
                "term": term,
                "group": arm,
                "participants": g["USUBJID"].nunique(),
                "events": len(g),
                **{s: int(sev.get(s, 0)) for s in config.SEVERITIES},
                "serious": int((g["AESER"] == "Y").sum()),
                "related": int((g["AEREL"] == "Y").sum()),
            }
        )
    out = pd.DataFrame(rows, columns=cols)
    total = out.groupby("term")["participants"].transform("sum")
    return out.assign(_t=-total).sort_values(["_t", "term", "group"], kind="mergesort").drop(columns="_t").reset_index(drop=True)


def anti_hla_by_visit(adis: pd.DataFrame) -> pd.DataFrame:
    """Anti-HLA positivity by arm and visit: class I, class II, and either, among those tested.

    Parameters
    ----------
    adis : DataFrame
        The immunogenicity dataset (``HLA1``, ``HLA2``, ``HLAANY`` records).

    Returns
    -------
    pandas.DataFrame
        Columns ``marker`` (PARAMCD: HLA1, HLA2, HLAANY), ``group``, ``visit_month``, ``events``,
        ``n`` (samples with a result), ``estimate``, ``ci_low``, ``ci_high`` (Wilson).
    """
    cols = ["marker", "group", "visit_month", "events", "n", "estimate", "ci_low", "ci_high"]
    rows = []
    for marker in ("HLA1", "HLA2", "HLAANY"):
        d = adis[adis["PARAMCD"] == marker]
        for v in sorted(adis["AVISITN"].unique()):
            p = proportions(d[d["AVISITN"] == v])
            rows.append(p.assign(marker=marker, visit_month=int(v)))
    return pd.concat(rows, ignore_index=True)[cols] if rows else pd.DataFrame(columns=cols)


ANTI_HLA_METHOD = "positive for anti-HLA class I or II; Wilson CI"


def anti_hla_at(adis: pd.DataFrame, visit_month: int) -> pd.DataFrame:
    """Anti-HLA positivity (either class) at one visit, per arm: the rows the results record.

    Parameters
    ----------
    adis : DataFrame
        The immunogenicity dataset.
    visit_month : int
        The visit.

    Returns
    -------
    pandas.DataFrame
        One row per arm: ``group``, ``visit_month``, ``events``, ``n``, ``estimate``, ``ci_low``,
        ``ci_high``, ``method`` (:data:`ANTI_HLA_METHOD`); every number empty with the reason in
        ``method`` when the data have no immunology sample at all, or none at ``visit_month``.
    """
    cols = ["group", "visit_month", "events", "n", "estimate", "ci_low", "ci_high", "method"]
    if len(adis) and (adis["AVISITN"] == visit_month).any():
        d = adis[(adis["PARAMCD"] == "HLAANY") & (adis["AVISITN"] == visit_month)]
        return proportions(d).assign(visit_month=int(visit_month), method=ANTI_HLA_METHOD)[cols]
    reason = f"no sample at month {visit_month}" if len(adis) else "no immunology table in these data"
    return pd.DataFrame(
        {
            "group": list(config.ARMS),
            "visit_month": int(visit_month),
            "events": np.nan,
            "n": np.nan,
            "estimate": np.nan,
            "ci_low": np.nan,
            "ci_high": np.nan,
            "method": not_estimable(ANTI_HLA_METHOD, reason),
        }
    )[cols]


def anti_hla_fisher(at: pd.DataFrame) -> pd.DataFrame:
    """Fisher's exact test of anti-HLA positivity between arms at one visit.

    Parameters
    ----------
    at : DataFrame
        :func:`anti_hla_at`.

    Returns
    -------
    pandas.DataFrame
        :func:`respine_nb.stats.fisher_exact`'s row (``visit_month`` added); no row unless both
        arms have samples.
    """
    a = at.set_index("group").reindex(list(config.ARMS))
    if not (pd.to_numeric(a["n"]) > 0).all():
        return pd.DataFrame(columns=["group", "visit_month", "estimate", "ci_low", "ci_high", "p_value", "n", "method"])
    x1, n1, x2, n2 = (int(a.loc[arm, c]) for arm in config.ARMS for c in ("events", "n"))
    return fisher_exact(x1, n1, x2, n2).assign(visit_month=int(at["visit_month"].iloc[0]))


def new_sensitisation(adis: pd.DataFrame, by_visit: int = 6) -> pd.DataFrame:
    """New anti-HLA sensitisation at ``by_visit`` (RESULTS_CONTRACT.md v2): among participants with
    both classes negative at month 0 and a status at ``by_visit`` (positive: class I or II positive;
    negative: both negative), the proportion positive at ``by_visit``, per arm (Wilson CI), and
    the contrast BM-MSC minus Sham (Newcombe CI, Fisher exact p).

    Parameters
    ----------
    adis : DataFrame
        The immunogenicity dataset (its ``HLAANY`` records: AVAL 1 when either class is
        positive, 0 only when both are negative, empty otherwise).
    by_visit : int
        The visit whose status is compared.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`respine_nb.stats.binary.compare_proportions` (``events`` = newly
        sensitised), with ``method`` naming the definition.
    """
    hla = adis[adis["PARAMCD"] == "HLAANY"]
    negative0 = hla.loc[(hla["AVISITN"] == 0) & (hla["AVAL"] == 0), "USUBJID"]
    at = hla[(hla["AVISITN"] == by_visit) & hla["AVAL"].notna() & hla["USUBJID"].isin(negative0)].drop_duplicates("USUBJID")
    out = compare_proportions(at, outcome="AVAL", by="ARM")
    label = f"negative for both classes at month 0, positive (class I or II) at month {by_visit}"
    out["method"] = [
        f"{label}; {m}" if g == config.CONTRAST else relabel_method(m, f"{label}; Wilson score CI")
        for g, m in zip(out["group"], out["method"])
    ]
    if not len(adis):  # not "no evaluable participant": the data have no immunology at all
        out["method"] = [not_estimable(m.split("; not estimable")[0], "no immunology table in these data") for m in out["method"]]
    return out


def dsa_by_visit(adis: pd.DataFrame) -> pd.DataFrame:
    """Donor-specific antibodies among BM-MSC participants tested, by visit; Wilson CI.

    Parameters
    ----------
    adis : DataFrame
        The immunogenicity dataset (``DSA`` records).

    Returns
    -------
    pandas.DataFrame
        Columns ``group`` (BM-MSC), ``visit_month``, ``events``, ``n``, ``estimate``, ``ci_low``,
        ``ci_high``, ``method``.
    """
    d = adis[(adis["PARAMCD"] == "DSA") & (adis["ARM"] == config.ARMS[0]) & adis["AVAL"].notna()]
    rows = []
    for v in sorted(d["AVISITN"].unique()):
        y = d.loc[d["AVISITN"] == v, "AVAL"].to_numpy(dtype=float) == 1
        lo, hi = wilson_ci(int(y.sum()), len(y))
        rows.append(
            {"visit_month": int(v), "events": int(y.sum()), "n": len(y), "estimate": y.mean(), "ci_low": lo, "ci_high": hi}
        )
    out = pd.DataFrame(rows, columns=["visit_month", "events", "n", "estimate", "ci_low", "ci_high"])
    out.insert(0, "group", config.ARMS[0])
    out["method"] = "donor-specific antibodies; Wilson CI"
    return out


def sensitisation_and_response(adis: pd.DataFrame, adsl: pd.DataFrame, visit_month: int = 6) -> pd.DataFrame:
    """Responder proportion at the primary visit (ADSL RESPFL) by anti-HLA status (either class)
    at ``visit_month``, in BM-MSC participants tested then and evaluable at the primary visit;
    Fisher's exact test.

    Parameters
    ----------
    adis : DataFrame
        The immunogenicity dataset (``HLA1``, ``HLA2`` records).
    adsl : DataFrame
        The subject-level dataset (``ARM``, ``RESPFL`` at the run's primary visit).
    visit_month : int
        The immunology visit.

    Returns
    -------
    pandas.DataFrame
        One row per status (``anti-HLA positive``, ``anti-HLA negative``): ``status``,
        ``events`` (responders), ``n``, ``estimate``, ``ci_low``, ``ci_high``, and on both rows
        ``fisher_or`` (conditional odds ratio, positive vs negative) and ``fisher_p``.
    """
    tested = adis[adis["PARAMCD"].isin(["HLA1", "HLA2"]) & (adis["AVISITN"] == visit_month) & adis["AVAL"].notna()]
    at = tested.assign(pos=tested["AVAL"] == 1).groupby("USUBJID")["pos"].any().reset_index()
    d = adsl[(adsl["ARM"] == config.ARMS[0]) & adsl["RESPFL"].notna()].merge(at, on="USUBJID")
    rows = []
    for status, mask in (("anti-HLA positive", d["pos"]), ("anti-HLA negative", ~d["pos"])):
        y = d.loc[mask, "RESPFL"] == "Y"
        lo, hi = wilson_ci(int(y.sum()), len(y))
        rows.append(
            {
                "status": status,
                "events": int(y.sum()),
                "n": len(y),
                "estimate": y.mean() if len(y) else np.nan,
                "ci_low": lo,
                "ci_high": hi,
            }
        )
    out = pd.DataFrame(rows)
    x1, n1, x2, n2 = (int(v) for v in (out["events"][0], out["n"][0], out["events"][1], out["n"][1]))
    f = fisher_exact(x1, n1, x2, n2).iloc[0] if min(n1, n2) > 0 else {"estimate": np.nan, "p_value": np.nan}
    out["fisher_or"], out["fisher_p"] = float(f["estimate"]), float(f["p_value"])
    return out


AE_CONTRASTS = ("any_ae", "sae", "related_sae")  # the categories compared between arms (RESULTS_CONTRACT v2)


def ae_flags(adsl: pd.DataFrame, adae: pd.DataFrame, categories=tuple(AE_CATEGORIES)) -> pd.DataFrame:
    """One row per treated participant (ADSL ``SAFFL`` "Y") with a flag per kind of event: True when
    they had at least one treatment-emergent event (ADAE ``TRTEMFL``) of that kind.

    Parameters
    ----------
    adsl, adae : DataFrame
        The subject-level dataset and the adverse events.
    categories : sequence of str
        Keys of :data:`AE_CATEGORIES`.

    Returns
    -------
    pandas.DataFrame
        Columns ``USUBJID``, ``ARM`` and one boolean column per category, in ADSL order.
    """
    safety = adsl.loc[adsl["SAFFL"] == "Y", ["USUBJID", "ARM"]].reset_index(drop=True)
    ae = _emergent(adae)
    flags = {key: safety["USUBJID"].isin(ae.loc[AE_CATEGORIES[key][1](ae), "USUBJID"] if len(ae) else []) for key in categories}
    return safety.assign(**flags)


def ae_contrasts(adsl: pd.DataFrame, adae: pd.DataFrame, categories=AE_CONTRASTS) -> pd.DataFrame:
    """Participants of the safety population with at least one treatment-emergent event of each
    kind: each arm (Wilson CI) and the contrast BM-MSC minus Sham (Newcombe CI, Fisher exact p),
    by :func:`respine_nb.stats.binary.compare_proportions` on :func:`ae_flags`.

    Parameters
    ----------
    adsl, adae : DataFrame
        The subject-level dataset (``SAFFL``) and the adverse events (``TRTEMFL``, ``AESER``, ``AEREL``).
    categories : sequence of str
        Keys of :data:`AE_CATEGORIES` (default :data:`AE_CONTRASTS`).

    Returns
    -------
    pandas.DataFrame
        ``category``, ``label`` and the columns of ``compare_proportions`` (``group``, ``events``,
        ``n`` = treated, ``estimate``, ``ci_low``, ``ci_high``, ``p_value``, ``method``): three rows
        per category, the arms then the contrast.
    """
    flags = ae_flags(adsl, adae, categories)
    parts = []
    for key in categories:
        rows = compare_proportions(flags, outcome=key, by="ARM")
        label = AE_CATEGORIES[key][0]
        rows["method"] = [f"{label} (treatment-emergent, treated participants); {m}" for m in rows["method"]]
        parts.append(rows.assign(category=key, label=label))
    cols = ["category", "label", "group", "events", "n", "estimate", "ci_low", "ci_high", "p_value", "method"]
    return pd.concat(parts, ignore_index=True)[cols]


def suppress_with_contrast(df: pd.DataFrame, min_cell: int, by: str | None = None) -> pd.DataFrame:
    """Small-cell suppression of arms-and-contrast rows: an arm row counting 1 to ``min_cell - 1``
    participants (``events``) loses its estimate and CI, and so does the contrast of its set
    (rows with the same ``by`` value, or all rows), p included, since the contrast and the other
    arm would give the count back. ``min_cell = 0`` keeps everything.

    Parameters
    ----------
    df : DataFrame
        Rows with ``group``, ``events``, ``estimate``, ``ci_low``, ``ci_high`` (``p_value``,
        ``method`` when present), e.g. :func:`ae_contrasts` or :func:`new_sensitisation`.
    min_cell : int
        The smallest count shown.
    by : str, optional
        The column that separates independent sets (e.g. ``category``).

    Returns
    -------
    pandas.DataFrame
        A copy of ``df``.
    """
    out = df.copy()
    if not min_cell or not len(out):
        return out
    small = pd.to_numeric(out["events"], errors="coerce").astype(float).between(1, min_cell - 1)
    key = out[by] if by else pd.Series(0, index=out.index)
    hit = key.isin(key[small.to_numpy()]).to_numpy() & (out["group"] == config.CONTRAST).to_numpy()
    for mask, why in ((small.to_numpy(), f"fewer than {min_cell}"), (hit, f"an arm has fewer than {min_cell}")):
        out.loc[mask, [c for c in ("estimate", "ci_low", "ci_high", "p_value") if c in out.columns]] = np.nan
        if "method" in out.columns:
            out.loc[mask, "method"] = out.loc[mask, "method"].astype(str) + f"; suppressed: {why}"
    return out


def safety_events(adsl: pd.DataFrame, adae: pd.DataFrame) -> pd.DataFrame:
    """The treatment-emergent events of treated participants, as :func:`respine_nb.tables.safety_publication`
    reads them.

    Returns
    -------
    pandas.DataFrame
        Columns ``USUBJID``, ``ARM``, ``AEDECOD``, ``serious`` (bool: ``AESER`` "Y").
    """
    ae = _emergent(adae)
    ae = ae[ae["USUBJID"].isin(adsl.loc[adsl["SAFFL"] == "Y", "USUBJID"])] if len(ae) else ae
    return pd.DataFrame(
        {
            "USUBJID": ae["USUBJID"].astype(str).to_numpy() if len(ae) else [],
            "ARM": ae["ARM"].astype(str).to_numpy() if len(ae) else [],
            "AEDECOD": ae["AEDECOD"].astype(str).to_numpy() if len(ae) else [],
            "serious": (ae["AESER"] == "Y").to_numpy(dtype=bool) if len(ae) else np.array([], dtype=bool),
        }
    )

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
    "new_sensitisation",
    "dsa_by_visit",
    "sensitisation_and_response",
]


AE_CATEGORIES = {
    "any_ae": ("any adverse event", lambda ae: np.ones(len(ae), dtype=bool)),
    "sae": ("any serious adverse event", lambda ae: ae["serious"].fillna(False).to_numpy(dtype=bool)),
    "related_ae": ("any related adverse event", lambda ae: ae["related"].fillna(False).to_numpy(dtype=bool)),
    "related_sae": (
        "any related serious adverse event",
        lambda ae: (ae["serious"].fillna(False) & ae["related"].fillna(False)).to_numpy(dtype=bool),
    ),
}


def ae_overview(adsl: pd.DataFrame, adae: pd.DataFrame) -> pd.DataFrame:
    """Participants of the safety population (treated) with at least one event of each kind, per arm.

    Returns
    -------
    pandas.DataFrame
        One row per kind and arm: ``category`` (any_ae, sae, related_ae, related_sae),
        ``label``, ``group``, ``events`` (participants with >= 1 such event), ``n`` (treated),
        ``estimate`` (proportion), ``ci_low``, ``ci_high`` (Wilson), ``n_events`` (events),
        ``method``.
    """
    safety = adsl[adsl["saffl"].astype(bool)]
    ae = adae[adae["saffl"].astype(bool)] if len(adae) else adae
    rows = []
    for key, (label, select) in AE_CATEGORIES.items():
        hit = ae[select(ae)] if len(ae) else ae
        for arm in config.ARMS:
            ids = set(safety.loc[safety["arm"] == arm, "subject_id"])
            who = set(hit.loc[hit["arm"] == arm, "subject_id"]) & ids if len(hit) else set()
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
                    "n_events": int((hit["arm"] == arm).sum()) if len(hit) else 0,
                    "method": method if n else not_estimable(method, f"no treated participant in {arm}"),
                }
            )
    return pd.DataFrame(rows)


def ae_by_term(adae: pd.DataFrame) -> pd.DataFrame:
    """Events by preferred term and arm: participants, events and events by severity.

    Returns
    -------
    pandas.DataFrame
        Columns ``term``, ``group``, ``participants``, ``events``, ``mild``, ``moderate``,
        ``severe``, ``serious``, ``related``; sorted by total participants (descending), term.
    """
    cols = ["term", "group", "participants", "events", *config.SEVERITIES, "serious", "related"]
    ae = adae[adae["saffl"].astype(bool)] if len(adae) else adae
    if not len(ae):
        return pd.DataFrame(columns=cols)
    rows = []
    for (term, arm), g in ae.groupby(["term", "arm"], sort=True):
        sev = g["severity"].value_counts()
        rows.append(
            {
                "term": term,
                "group": arm,
                "participants": g["subject_id"].nunique(),
                "events": len(g),
                **{s: int(sev.get(s, 0)) for s in config.SEVERITIES},
                "serious": int(g["serious"].sum()),
                "related": int(g["related"].sum()),
            }
        )
    out = pd.DataFrame(rows, columns=cols)
    total = out.groupby("term")["participants"].transform("sum")
    return out.assign(_t=-total).sort_values(["_t", "term", "group"], kind="mergesort").drop(columns="_t").reset_index(drop=True)


def anti_hla_by_visit(immunology: pd.DataFrame, subjects: pd.DataFrame) -> pd.DataFrame:
    """Anti-HLA positivity by arm and visit: class I, class II, and either, among those tested.

    Returns
    -------
    pandas.DataFrame
        Columns ``marker`` (class_i, class_ii, any), ``group``, ``visit_month``, ``events``,
        ``n`` (samples with a result), ``estimate``, ``ci_low``, ``ci_high`` (Wilson).
    """
    imm = immunology.merge(subjects[["subject_id", "arm"]], on="subject_id", how="left")
    c1, c2 = imm["anti_hla_class_i"], imm["anti_hla_class_ii"]
    either = (c1.fillna(False) | c2.fillna(False)).astype("boolean")
    either[c1.isna() & c2.isna()] = pd.NA
    either[(c1.isna() | c2.isna()) & ~(c1.fillna(False) | c2.fillna(False))] = pd.NA  # negative needs both
    imm = imm.assign(class_i=c1, class_ii=c2, any=either)
    rows = []
    for marker in ("class_i", "class_ii", "any"):
        for v in sorted(imm["visit_month"].unique()):
            p = proportions(imm[imm["visit_month"] == v], outcome=marker)
            rows.append(p.assign(marker=marker, visit_month=int(v)))
    out = pd.concat(rows, ignore_index=True)
    return out[["marker", "group", "visit_month", "events", "n", "estimate", "ci_low", "ci_high"]]


def _wide_any(immunology: pd.DataFrame) -> pd.DataFrame:
    imm = immunology.assign(
        pos=(immunology["anti_hla_class_i"].fillna(False) | immunology["anti_hla_class_ii"].fillna(False)).to_numpy(dtype=bool),
        tested=(immunology["anti_hla_class_i"].notna() | immunology["anti_hla_class_ii"].notna()).to_numpy(),
    )
    return imm


def new_sensitisation(immunology: pd.DataFrame, subjects: pd.DataFrame, by_visit: int = 6) -> pd.DataFrame:
    """New anti-HLA sensitisation at ``by_visit`` (RESULTS_CONTRACT.md v2): among participants with
    both classes negative at month 0 and a status at ``by_visit`` (positive: class I or II positive;
    negative: both negative), the proportion positive at ``by_visit``, per arm (Wilson CI), and
    the contrast BM-MSC minus Sham (Newcombe CI, Fisher exact p).

    Parameters
    ----------
    immunology : pandas.DataFrame
        The raw immunology table (``subject_id``, ``visit_month``, ``anti_hla_class_i``,
        ``anti_hla_class_ii``).
    subjects : pandas.DataFrame
        ``subject_id`` and ``arm`` of every participant.
    by_visit : int
        The visit whose status is compared.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`respine_nb.stats.binary.compare_proportions` (``events`` = newly
        sensitised), with ``method`` naming the definition.
    """
    c1, c2 = immunology["anti_hla_class_i"], immunology["anti_hla_class_ii"]
    status = pd.Series(pd.NA, index=immunology.index, dtype="boolean")
    status[(c1 == True) | (c2 == True)] = True  # noqa: E712 (missing stays missing)
    status[(c1 == False) & (c2 == False)] = False  # noqa: E712
    imm = immunology[["subject_id", "visit_month"]].assign(status=status)
    negative0 = imm.loc[(imm["visit_month"] == 0) & (imm["status"] == False), "subject_id"]  # noqa: E712
    at = imm[(imm["visit_month"] == by_visit) & imm["status"].notna() & imm["subject_id"].isin(negative0)]
    per = at.drop_duplicates("subject_id").merge(subjects[["subject_id", "arm"]], on="subject_id")
    out = compare_proportions(per.assign(new=per["status"].astype(bool)), outcome="new")
    label = f"negative for both classes at month 0, positive (class I or II) at month {by_visit}"
    out["method"] = [
        f"{label}; {m}" if g == config.CONTRAST else relabel_method(m, f"{label}; Wilson score CI")
        for g, m in zip(out["group"], out["method"])
    ]
    return out


def dsa_by_visit(immunology: pd.DataFrame, subjects: pd.DataFrame) -> pd.DataFrame:
    """Donor-specific antibodies among BM-MSC participants tested, by visit; Wilson CI.

    Returns
    -------
    pandas.DataFrame
        Columns ``visit_month``, ``events``, ``n``, ``estimate``, ``ci_low``, ``ci_high``.
    """
    imm = immunology.merge(subjects[["subject_id", "arm"]], on="subject_id")
    imm = imm[(imm["arm"] == config.ARMS[0]) & imm["dsa"].notna()]
    rows = []
    for v in sorted(imm["visit_month"].unique()):
        y = imm.loc[imm["visit_month"] == v, "dsa"].astype(bool)
        lo, hi = wilson_ci(int(y.sum()), len(y))
        rows.append(
            {"visit_month": int(v), "events": int(y.sum()), "n": len(y), "estimate": y.mean(), "ci_low": lo, "ci_high": hi}
        )
    return pd.DataFrame(rows, columns=["visit_month", "events", "n", "estimate", "ci_low", "ci_high"])


def sensitisation_and_response(immunology: pd.DataFrame, resp: pd.DataFrame, visit_month: int = 6) -> pd.DataFrame:
    """Month-12 responder proportion by anti-HLA status (either class) at ``visit_month``, in
    BM-MSC participants tested then and evaluable at month 12; Fisher's exact test.

    Returns
    -------
    pandas.DataFrame
        One row per status (``anti-HLA positive``, ``anti-HLA negative``): ``status``,
        ``events`` (responders), ``n``, ``estimate``, ``ci_low``, ``ci_high``, and on both rows
        ``fisher_or`` (conditional odds ratio, positive vs negative) and ``fisher_p``.
    """
    imm = _wide_any(immunology)
    at = imm[(imm["visit_month"] == visit_month) & imm["tested"]][["subject_id", "pos"]]
    d = resp[(resp["arm"] == config.ARMS[0]) & resp["responder"].notna()].merge(at, on="subject_id")
    rows = []
    for status, mask in (("anti-HLA positive", d["pos"]), ("anti-HLA negative", ~d["pos"])):
        y = d.loc[mask, "responder"].astype(bool)
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

"""Named dataset shapes an author's real export may take, as pure transforms of raw tables.

Each function takes the dict of raw tables (as returned by ``respine_nb.synthetic.generate``
or ``io.load_dataset(...).tables``) and returns a NEW dict (the input is never modified),
still valid under DATA_CONTRACT.md v1.1. They compose: ``one_site(no_month24(tables))``.
Participants are picked deterministically (sorted subject_id), so a transform of the same
tables always gives the same dataset.

``SCENARIOS`` maps each name to its function; :func:`apply` applies several in order.
"""

from __future__ import annotations

import numpy as np

OPTIONAL = ("immunology", "screening", "intercurrent_events")
SUBJECT_TABLES = ("outcomes", "mri", "adverse_events", "immunology", "intercurrent_events")


def _copy(tables: dict) -> dict:
    return {name: df.copy() for name, df in tables.items()}


def _ids(tables: dict, arm: str | None = None) -> list:
    s = tables["subjects"]
    if arm is not None:
        s = s[s["arm"] == arm]
    return sorted(s["subject_id"])


def _keep_subjects(tables: dict, keep) -> dict:
    """Only the participants in ``keep``, in every table; screening keeps as many 'randomized' rows."""
    keep = set(keep)
    out = _copy(tables)
    out["subjects"] = out["subjects"][out["subjects"]["subject_id"].isin(keep)].reset_index(drop=True)
    for name in SUBJECT_TABLES:
        if name in out:
            out[name] = out[name][out[name]["subject_id"].isin(keep)].reset_index(drop=True)
    if "screening" in out:
        scr = out["screening"]
        rand = np.flatnonzero((scr["outcome"] == "randomized").to_numpy())
        drop = rand[len(out["subjects"]) :]
        out["screening"] = scr.drop(index=scr.index[drop]).reset_index(drop=True)
    return out


def _drop_visits(tables: dict, names, visits) -> dict:
    out = _copy(tables)
    for name in names:
        if name in out:
            out[name] = out[name][~out[name]["visit_month"].isin(visits)].reset_index(drop=True)
    return out


def _rename_subjects(tables: dict, mapping: dict) -> dict:
    out = _copy(tables)
    for name in ("subjects", *SUBJECT_TABLES):
        if name in out:
            out[name]["subject_id"] = out[name]["subject_id"].map(lambda s: mapping.get(s, s))
    return out


# --------------------------------------------------------------------------- scenarios


def no_month24(tables: dict) -> dict:
    """Month 24 not reached yet: no month-24 outcomes or MRI rows at all."""
    return _drop_visits(tables, ("outcomes", "mri"), [24])


def no_month12(tables: dict) -> dict:
    """Nobody reached month 12 (the primary visit): no month-12 or month-24 outcomes or MRI rows."""
    return _drop_visits(tables, ("outcomes", "mri", "immunology"), [12, 24])


def mri_0_12_only(tables: dict) -> dict:
    """MRI only at months 0 and 12."""
    return _drop_visits(tables, ("mri",), [6, 24])


def sham_not_evaluable(tables: dict) -> dict:
    """No Sham participant evaluable at month 12 (their month-12 outcomes rows are absent)."""
    out = _copy(tables)
    o, sham = out["outcomes"], set(_ids(tables, "Sham"))
    out["outcomes"] = o[~(o["subject_id"].isin(sham) & (o["visit_month"] == 12))].reset_index(drop=True)
    return out


def unbalanced_arms(tables: dict) -> dict:
    """Strongly unbalanced arms: every BM-MSC participant, only a fifth of Sham (at least 2)."""
    sham = _ids(tables, "Sham")
    return _keep_subjects(tables, _ids(tables, "BM-MSC") + sham[: max(2, len(sham) // 5)])


def eight_per_arm(tables: dict) -> dict:
    """8 participants per arm (fewer if the arm has fewer)."""
    return _keep_subjects(tables, _ids(tables, "BM-MSC")[:8] + _ids(tables, "Sham")[:8])


def single_participant_sites(tables: dict) -> dict:
    """Three participants each alone in a site of their own."""
    out = _copy(tables)
    s = out["subjects"]
    for i, sid in enumerate(_ids(tables)[:3]):
        s.loc[s["subject_id"] == sid, "site"] = f"Solo site {i + 1}"
    return out


def one_site(tables: dict) -> dict:
    """Every participant at one site."""
    out = _copy(tables)
    out["subjects"]["site"] = "Montpellier"
    return out


ODD_SITES = ("Saint-Étienne", "A Coruña", "Köln – Süd", "Clermont-Ferrand (CHU)", "Łódź", "São Paulo")


def accented_sites(tables: dict) -> dict:
    """Site names with accents, dashes, spaces and parentheses."""
    out = _copy(tables)
    sites = sorted(out["subjects"]["site"].unique())
    mapping = {site: ODD_SITES[i % len(ODD_SITES)] + ("" if i < len(ODD_SITES) else f" {i}") for i, site in enumerate(sites)}
    out["subjects"]["site"] = out["subjects"]["site"].map(mapping)
    return out


def odd_identifiers(tables: dict) -> dict:
    """Identifiers in any format: leading zeros, digits only, spaces, slashes, accents, mixed case."""
    formats = ("{:05d}", "{}", "p-{}/a", "Pt {}", "ÉTU.{}", "x_{}_Y", "{}-B")
    mapping = {sid: formats[i % len(formats)].format(i + 1) for i, sid in enumerate(_ids(tables))}
    return _rename_subjects(tables, mapping)


OFF_VISIT_MONTHS = (0.5, 2.5, 7.0, 18.0)


def discontinued_off_visit(tables: dict) -> dict:
    """Discontinuation at months that are not visits (0.5, 2.5, 7, 18), later rows removed."""
    out = _copy(tables)
    s = out["subjects"]
    leaving = dict(zip(_ids(tables)[-len(OFF_VISIT_MONTHS) :], OFF_VISIT_MONTHS))
    for sid, month in leaving.items():
        row = s["subject_id"] == sid
        s.loc[row, "discontinuation_month"] = month
        s.loc[row, "discontinuation_reason"] = "withdrew consent"
        for name in ("outcomes", "mri", "immunology"):
            if name in out:
                t = out[name]
                out[name] = t[~((t["subject_id"] == sid) & (t["visit_month"] > month))].reset_index(drop=True)
    return out


def no_sae(tables: dict) -> dict:
    """No serious adverse event at all."""
    out = _copy(tables)
    out["adverse_events"]["serious"] = False
    return out


def no_ae(tables: dict) -> dict:
    """No adverse event at all (the table is present, with its header only)."""
    out = _copy(tables)
    out["adverse_events"] = out["adverse_events"].iloc[0:0].copy()
    return out


def nobody_sensitised(tables: dict) -> dict:
    """Nobody sensitised: every anti-HLA result negative, every DSA negative (BM-MSC)."""
    out = _copy(tables)
    if "immunology" in out:
        imm = out["immunology"]
        for col in ("anti_hla_class_i", "anti_hla_class_ii", "dsa"):
            imm[col] = imm[col].where(imm[col].isna(), False).astype("boolean")
    return out


def no_optional_tables(tables: dict) -> dict:
    """Optional tables absent (immunology, screening, intercurrent events)."""
    return {name: df.copy() for name, df in tables.items() if name not in OPTIONAL}


def no_baseline(tables: dict) -> dict:
    """One participant per arm without a month-0 outcomes row; another with a missing baseline VAS."""
    out = _copy(tables)
    o = out["outcomes"]
    gone = [ids[0] for ids in (_ids(tables, "BM-MSC"), _ids(tables, "Sham")) if ids]
    o = o[~(o["subject_id"].isin(gone) & (o["visit_month"] == 0))].reset_index(drop=True)
    vas_missing = [ids[1] for ids in (_ids(tables, "BM-MSC"), _ids(tables, "Sham")) if len(ids) > 1]
    o.loc[o["subject_id"].isin(vas_missing) & (o["visit_month"] == 0), "vas_pain"] = np.nan
    out["outcomes"] = o
    return out


def no_follow_up(tables: dict) -> dict:
    """One participant per arm with no follow-up at all (baseline rows only)."""
    out = _copy(tables)
    gone = [ids[-1] for ids in (_ids(tables, "BM-MSC"), _ids(tables, "Sham")) if ids]
    for name in ("outcomes", "mri", "immunology"):
        if name in out:
            t = out[name]
            out[name] = t[~(t["subject_id"].isin(gone) & (t["visit_month"] > 0))].reset_index(drop=True)
    return out


def _set_follow_up(tables: dict, arm: str, fn) -> dict:
    out = _copy(tables)
    o = out["outcomes"]
    rows = o["subject_id"].isin(set(_ids(tables, arm))) & (o["visit_month"] > 0)
    for col in ("vas_pain", "odi"):
        o.loc[rows, col] = fn(o, col, rows)
    return out


def all_respond_msc(tables: dict) -> dict:
    """Every evaluable BM-MSC participant responds at every visit (VAS and ODI 0 where observed)."""
    return _set_follow_up(tables, "BM-MSC", lambda o, col, rows: o.loc[rows, col].where(o.loc[rows, col].isna(), 0.0))


def nobody_responds(tables: dict) -> dict:
    """No response in either arm: every follow-up VAS and ODI equals the participant's baseline."""
    out = tables
    for arm in ("BM-MSC", "Sham"):

        def same_as_baseline(o, col, rows):
            base = o[o["visit_month"] == 0].set_index("subject_id")[col]
            return o.loc[rows, "subject_id"].map(base).where(o.loc[rows, col].notna())

        out = _set_follow_up(out, arm, same_as_baseline)
    return out


def constant_t2(tables: dict) -> dict:
    """Zero variance: every T2 value the same (80 ms)."""
    out = _copy(tables)
    m = out["mri"]
    m["t2_np_ms"] = m["t2_np_ms"].where(m["t2_np_ms"].isna(), 80.0)
    return out


SCENARIOS = {
    "no_month24": no_month24,
    "no_month12": no_month12,
    "mri_0_12_only": mri_0_12_only,
    "sham_not_evaluable": sham_not_evaluable,
    "unbalanced_arms": unbalanced_arms,
    "eight_per_arm": eight_per_arm,
    "single_participant_sites": single_participant_sites,
    "one_site": one_site,
    "accented_sites": accented_sites,
    "odd_identifiers": odd_identifiers,
    "discontinued_off_visit": discontinued_off_visit,
    "no_sae": no_sae,
    "no_ae": no_ae,
    "nobody_sensitised": nobody_sensitised,
    "no_optional_tables": no_optional_tables,
    "no_baseline": no_baseline,
    "no_follow_up": no_follow_up,
    "all_respond_msc": all_respond_msc,
    "nobody_responds": nobody_responds,
    "constant_t2": constant_t2,
}


def apply(tables: dict, names) -> dict:
    """Apply the named scenarios in order; returns a new dict of tables."""
    out = _copy(tables)
    for name in names:
        out = SCENARIOS[name](out)
    return out


def frames_equal(a: dict, b: dict) -> bool:
    """Whether two dicts of tables hold the same frames (helper for purity checks)."""
    return a.keys() == b.keys() and all(a[k].equals(b[k]) for k in a)

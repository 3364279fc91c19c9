"""ADaM-lite analysis datasets, derived once per run from the validated raw tables, and the
analysis views built from them.

Every notebook reads these datasets (through :mod:`respine_nb.session`), never the raw tables:
a reviewer checks any number against them. Column names follow ADaM (upper case; population
and criterion flags ``"Y"``/``"N"``, empty when undecided); data/derived/README.md documents
every variable of every dataset, one line each.

- ``adsl``: one row per randomised participant: arm, site, baseline characteristics and scores,
  population flags, discontinuation, subgroup variables, and the responder status at the run's
  primary visit.
- ``adeff``: a BDS: participant x visit x parameter. The measures (``VAS``, ``ODI``, ``PCS``,
  ``MCS``) at every scheduled visit (a missed visit is a row without AVAL), with BASE, CHG, PCHG;
  the responder status at every post-baseline visit as its own parameter (``RESP``: AVAL 1/0,
  empty when not evaluable, with the VAS and ODI criteria in CRIT1FL/CRIT2FL and the reason when
  not evaluable); the minimal clinically important improvements (``MCIDVAS``, ``MCIDODI``).
- ``admri``: a BDS: participant x imaging visit x parameter (``T2NP``, ``PFIRR``, ``DISCHT``).
- ``adtte``: time to first response (``TTRESP``): AVAL in months, CNSR (1 = censored, 0 =
  event), and the interval (INTLO, INTHI] holding the true time for interval-censored analyses.
- ``adae``: adverse events with the safety and treatment-emergent flags.
- ``adis``: immunogenicity: anti-HLA class I and II, either class, donor-specific antibodies,
  per sample (AVAL 1 positive, 0 negative).
- ``adds``: the screening log (one row per screened candidate), for the CONSORT diagram; no
  row when the dataset has no screening table.
- ``adice``: intercurrent events (rescue medication, spine surgery, other spinal injection,
  procedure not received) with their month; no row when the dataset has no such table.

The analysis views (:func:`responders`, :func:`population`, :func:`wide_outcomes`,
:func:`status_by_visit`, :func:`paired_visit`, :func:`mri_by_visit`) select and reshape these
datasets for one analysis; stats functions receive datasets or views, never raw tables.

No function mutates its input. Thresholds are keyword arguments (defaults from config).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import config, endpoints

STUDYID = config.TRIAL_ID
DATASETS = ("adsl", "adeff", "admri", "adtte", "adae", "adis", "adds", "adice")
_YN = np.array(["Y", "N", None], dtype=object)
_POS_NEG = np.array(["POS", "NEG", None], dtype=object)  # ADIS AVALC
_VISIT_STATUSES = np.array(["observed", "discontinued", "missed"], dtype=object)  # ADEFF VISSTAT
NOT_EVALUABLE_REASONS = ("discontinued", "missed visit", "baseline missing", "component missing")

EFFICACY_PARAMS = {  # PARAMCD -> (PARAMN, PARAM)
    **{code: (i + 1, config.PARAM_LABELS[code]) for i, code in enumerate(config.MEASURE_PARAMS)},
    "RESP": (5, "Responder (VAS criterion or ODI criterion met)"),
    "MCIDVAS": (6, f"MCID reached: VAS improved by >= {config.MCID['vas_pain']:g} mm (Ostelo 2008)"),
    "MCIDODI": (7, f"MCID reached: ODI improved by >= {config.MCID['odi']:g} points (Ostelo 2008)"),
}
MRI_PARAMS = {  # PARAMCD -> (raw column, PARAMN, PARAM)
    "T2NP": ("t2_np_ms", 1, "Nucleus pulposus T2 (ms)"),
    "PFIRR": ("pfirrmann_grade", 2, "Modified Pfirrmann grade (Griffith 2007)"),
    "DISCHT": ("disc_height_mm", 3, "Disc height (mm)"),
}
IMMUNOLOGY_PARAMS = {  # PARAMCD -> (PARAMN, PARAM)
    "HLA1": (1, "Anti-HLA class I antibodies"),
    "HLA2": (2, "Anti-HLA class II antibodies"),
    "HLAANY": (3, "Anti-HLA antibodies, class I or II"),
    "DSA": (4, "Donor-specific antibodies"),
}
# Pre-specified subgroups of the primary endpoint: label -> ADSL variable, and the variable's key
# in the results ids (primary.subgroup_interaction.<key>).
SUBGROUPS = {
    "Sex": "SEX",
    "Age": "AGEGR1",
    "Modified Pfirrmann grade": "PFIRRGR1",
    "Disc level": "DISCLGR1",
    "Baseline VAS": "BVASGR1",
}
SUBGROUP_KEYS = {
    "SEX": "sex",
    "AGEGR1": "age_group",
    "PFIRRGR1": "grade_group",
    "DISCLGR1": "level_group",
    "BVASGR1": "vas_group",
}

ADSL_COLUMNS = [
    "STUDYID",
    "USUBJID",
    "SITEID",
    "ARM",
    "RANDDT",
    "RANDFL",
    "TRTFL",
    "SAFFL",
    "NRIFL",
    "COMPLFL",
    "AGE",
    "AGEGR1",
    "SEX",
    "BMI",
    "SYMDUR",
    "DISCLVL",
    "DISCLGR1",
    "PFIRRSCR",
    "PFIRRGR1",
    "BVAS",
    "BVASGR1",
    "BODI",
    "BPCS",
    "BMCS",
    "BT2",
    "DCSMON",
    "DCSREAS",
    "EVALVIS",
    "EVALFL",
    "RESPFL",
    "NEREAS",
]
ADEFF_COLUMNS = [
    "STUDYID",
    "USUBJID",
    "SITEID",
    "ARM",
    "TRTFL",
    "PARAMCD",
    "PARAM",
    "PARAMN",
    "AVISIT",
    "AVISITN",
    "VISSTAT",
    "ABLFL",
    "AVAL",
    "AVALC",
    "BASE",
    "CHG",
    "PCHG",
    "CRIT1",
    "CRIT1FL",
    "CRIT2",
    "CRIT2FL",
    "NEREAS",
]
ADMRI_COLUMNS = [
    "STUDYID",
    "USUBJID",
    "SITEID",
    "ARM",
    "PARAMCD",
    "PARAM",
    "PARAMN",
    "AVISIT",
    "AVISITN",
    "ABLFL",
    "AVAL",
    "BASE",
    "CHG",
]
ADTTE_COLUMNS = [
    "STUDYID",
    "USUBJID",
    "SITEID",
    "ARM",
    "PARAMCD",
    "PARAM",
    "AVAL",
    "CNSR",
    "EVNTDESC",
    "INTLO",
    "INTHI",
    "NEVAL",
    "BVAS",
    "BODI",
]
ADAE_COLUMNS = ["STUDYID", "USUBJID", "ARM", "SAFFL", "TRTEMFL", "AEDECOD", "ASTDY", "AESEV", "AESER", "AEREL"]
ADIS_COLUMNS = ["STUDYID", "USUBJID", "ARM", "PARAMCD", "PARAM", "PARAMN", "AVISIT", "AVISITN", "ABLFL", "AVAL", "AVALC"]
ADDS_COLUMNS = ["STUDYID", "SCRID", "DSDECOD", "DSREAS"]


def _thresholds(kw: dict) -> dict:
    allowed = {"vas_abs_mm", "vas_rel", "odi_rel", "odi_rule", "odi_abs"}
    unknown = set(kw) - allowed
    if unknown:
        raise TypeError(f"unknown threshold(s): {sorted(unknown)}")
    return kw


def _yn(values) -> np.ndarray:
    """Booleans (nullable) as ADaM flags: ``"Y"``, ``"N"``, None when missing."""
    s = pd.Series(pd.array(np.asarray(values, dtype=object), dtype="boolean"))
    return _YN[np.where(s.isna().to_numpy(), 2, np.where(s.fillna(False).to_numpy(dtype=bool), 0, 1))]


def _repeat(value, n: int) -> np.ndarray:
    """An object array of ``n`` references to the one object ``value`` (np.full copies a text)."""
    out = np.empty(n, dtype=object)
    out.fill(value)
    return out


def _float(values) -> np.ndarray:
    return pd.Series(values).astype("Float64").to_numpy(dtype=float, na_value=np.nan)


def _avisit(visits) -> np.ndarray:
    """AVISIT of each AVISITN (``"Baseline"``, ``"Month 12"``): one object per distinct visit."""
    codes, months = pd.factorize(np.asarray(visits))
    labels = np.array(["Baseline" if int(v) == 0 else f"Month {int(v)}" for v in months] + [None], dtype=object)
    return labels[codes]


def _pct(x: float) -> str:
    return f"{x * 100:.4g} %"


def criteria(**thresholds) -> tuple[str, str]:
    """The responder rule's two criteria in words (ADEFF CRIT1 and CRIT2).

    Parameters
    ----------
    **thresholds
        ``vas_abs_mm``, ``vas_rel``, ``odi_rel``, ``odi_rule``, ``odi_abs`` (defaults from config).

    Returns
    -------
    tuple of str
        (VAS criterion, ODI criterion), e.g. ``"VAS improved by >= 20 mm and >= 20 % of baseline"``.
    """
    _thresholds(thresholds)
    vas_abs = thresholds.get("vas_abs_mm", config.VAS_ABS_MM)
    vas_rel = thresholds.get("vas_rel", config.VAS_REL)
    crit1 = f"VAS improved by >= {vas_abs:g} mm and >= {_pct(vas_rel)} of baseline"
    if thresholds.get("odi_rule", "relative") == "relative":
        crit2 = f"ODI improved by >= {_pct(thresholds.get('odi_rel', config.ODI_REL))} of baseline"
    else:
        crit2 = f"ODI improved by >= {thresholds.get('odi_abs', config.ODI_ABS):g} points"
    return crit1, crit2


def _status_at(tables, visits, **thresholds) -> pd.DataFrame:
    """Primary-endpoint status of every randomised participant at each of ``visits``, from the raw
    tables: ``subject_id``, ``arm``, ``site``, ``treated``, ``base_vas``, ``base_odi``, ``vas``,
    ``odi``, ``vas_met``, ``odi_met``, ``responder`` (nullable booleans), ``evaluable`` and
    ``reason`` (one of NOT_EVALUABLE_REASONS, or empty), ``visit_month``; one block of rows per
    visit (in the order of ``visits``), each sorted by subject_id."""
    _thresholds(thresholds)
    subjects, outcomes = tables["subjects"], tables["outcomes"]
    visits = np.asarray(visits, dtype=np.int64)
    cols = ["subject_id", "vas_pain", "odi"]
    base = outcomes.loc[outcomes["visit_month"] == 0, cols].rename(columns={"vas_pain": "base_vas", "odi": "base_odi"})
    people = (
        subjects[["subject_id", "arm", "site", "treated", "discontinuation_month"]]
        .merge(base, on="subject_id", how="left")
        .sort_values("subject_id", kind="mergesort")
    )
    df = people.take(np.tile(np.arange(len(people)), len(visits))).reset_index(drop=True)
    df["visit_month"] = np.repeat(visits, len(people))
    at = outcomes.loc[outcomes["visit_month"].isin(visits), ["subject_id", "visit_month", "vas_pain", "odi"]]
    at = at.rename(columns={"vas_pain": "vas"}).assign(seen=True)
    at["visit_month"] = at["visit_month"].to_numpy(dtype=np.int64)
    df = df.merge(at, on=["subject_id", "visit_month"], how="left")
    status = endpoints.responder_status(df["base_vas"], df["vas"], df["base_odi"], df["odi"], **thresholds)
    df[["vas_met", "odi_met", "responder"]] = status.to_numpy()
    for c in ("vas_met", "odi_met", "responder"):
        df[c] = df[c].astype("boolean")
    df["evaluable"] = df["responder"].notna().to_numpy(dtype=bool)
    seen = df["seen"].notna().to_numpy(dtype=bool)
    left = (df["discontinuation_month"] < df["visit_month"]).fillna(False).to_numpy(dtype=bool)
    base_missing = (df["base_vas"].isna() & df["base_odi"].isna()).to_numpy(dtype=bool)
    reason = np.select(
        [df["evaluable"].to_numpy(dtype=bool), ~seen & left, ~seen, base_missing],
        ["", "discontinued", "missed visit", "baseline missing"],
        default="component missing",
    )
    df["reason"] = pd.Series(reason, dtype="string")
    return df.drop(columns=["seen", "discontinuation_month"])


def _subgroup_levels(d: pd.DataFrame) -> dict:
    """AGEGR1, PFIRRGR1, DISCLGR1, BVASGR1 of each participant (object arrays, None when the
    variable is missing); ``d`` has the raw subjects columns and ``vas_pain`` at baseline."""
    grade = d["pfirrmann_grade"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    vas = d["vas_pain"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    age = d["age"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    med = float(np.nanmedian(vas)) if np.isfinite(vas).any() else np.nan

    def cut(x, conditions, labels):
        return np.where(np.isnan(x), None, np.select(conditions, labels[:-1], default=labels[-1]).astype(object))

    with np.errstate(invalid="ignore"):
        return {
            "AGEGR1": cut(age, [age < 40], ["< 40", ">= 40"]),
            "PFIRRGR1": cut(grade, [grade <= 3, grade <= 5], ["1-3", "4-5", "6-8"]),
            "DISCLGR1": np.where(d["disc_level"].isin(["L4-L5", "L5-S1"]), d["disc_level"].astype(object), "L1-L4"),
            "BVASGR1": cut(vas, [vas > med], [f"> {med:g} mm", f"<= {med:g} mm"]),
        }


def adsl(tables, visit_month: int = config.PRIMARY_VISIT, **thresholds) -> pd.DataFrame:
    """Subject-level analysis dataset (ADSL).

    Parameters
    ----------
    tables : dict of DataFrame
        Validated raw tables (``subjects``, ``outcomes``, ``mri``).
    visit_month : int
        The run's primary visit: EVALFL, RESPFL and NEREAS refer to it (EVALVIS says which).
    **thresholds
        The responder rule (``vas_abs_mm``, ``vas_rel``, ``odi_rel``, ``odi_rule``, ``odi_abs``).

    Returns
    -------
    pandas.DataFrame
        One row per randomised participant, sorted by USUBJID; columns :data:`ADSL_COLUMNS`
        (data/derived/README.md).
    """
    subjects, outcomes, mri = tables["subjects"], tables["outcomes"], tables["mri"]
    base = outcomes.loc[outcomes["visit_month"] == 0, ["subject_id", *config.MEASURES]]
    t2 = mri.loc[mri["visit_month"] == 0, ["subject_id", "t2_np_ms"]]
    at = _status_at(tables, [visit_month], **thresholds)[["subject_id", "evaluable", "responder", "reason"]]
    d = (
        subjects.merge(base, on="subject_id", how="left")
        .merge(t2, on="subject_id", how="left")
        .merge(at, on="subject_id", how="left")
        .sort_values("subject_id", kind="mergesort")
        .reset_index(drop=True)
    )
    reason = d["reason"].astype(object).to_numpy()
    out = pd.DataFrame(
        {
            "STUDYID": STUDYID,
            "USUBJID": d["subject_id"],
            "SITEID": d["site"],
            "ARM": d["arm"],
            "RANDDT": d["randomization_date"],
            "RANDFL": "Y",
            "TRTFL": _yn(d["treated"]),
            "SAFFL": _yn(d["treated"]),
            "NRIFL": "Y",
            "COMPLFL": _yn(d["discontinuation_month"].isna()),
            "AGE": d["age"],
            "SEX": d["sex"],
            "BMI": d["bmi"],
            "SYMDUR": d["symptom_duration_months"],
            "DISCLVL": d["disc_level"],
            "PFIRRSCR": d["pfirrmann_grade"],
            "BVAS": d["vas_pain"],
            "BODI": d["odi"],
            "BPCS": d["sf36_pcs"],
            "BMCS": d["sf36_mcs"],
            "BT2": d["t2_np_ms"],
            "DCSMON": d["discontinuation_month"],
            "DCSREAS": d["discontinuation_reason"],
            "EVALVIS": int(visit_month),
            "EVALFL": _yn(d["evaluable"].astype(bool)),
            "RESPFL": _yn(d["responder"]),
            "NEREAS": np.where(pd.isna(reason) | (reason == ""), None, reason).astype(object),
            **_subgroup_levels(d),
        }
    )
    return out[ADSL_COLUMNS]


def adeff(tables, **thresholds) -> pd.DataFrame:
    """Efficacy dataset (ADEFF, a BDS): participant x visit x parameter.

    The measures (PARAMCD ``VAS``, ``ODI``, ``PCS``, ``MCS``) have a row for every scheduled
    visit (0, 1, 3, 6, 12, 24), so missed visits are visible (VISSTAT; AVAL empty); ``RESP`` (the
    responder status with the run's rule) and ``MCIDVAS``, ``MCIDODI`` have a row for every
    post-baseline visit, AVAL 1 or 0, empty when it cannot be decided.

    Parameters
    ----------
    tables : dict of DataFrame
        Validated raw tables (``subjects``, ``outcomes``).
    **thresholds
        The responder rule (see :func:`adsl`).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`ADEFF_COLUMNS` (data/derived/README.md), sorted by USUBJID, PARAMN, AVISITN.
    """
    _thresholds(thresholds)
    subjects, outcomes = tables["subjects"], tables["outcomes"]
    grid = pd.MultiIndex.from_product(
        [sorted(subjects["subject_id"]), config.VISITS], names=["subject_id", "visit_month"]
    ).to_frame(index=False)
    wide = grid.merge(outcomes.assign(_seen=True), on=["subject_id", "visit_month"], how="left")
    wide = wide.merge(subjects[["subject_id", "arm", "site", "treated", "discontinuation_month"]], on="subject_id", how="left")
    gone = (wide["discontinuation_month"] < wide["visit_month"]).fillna(False).to_numpy(dtype=bool)
    seen = wide["_seen"].notna().to_numpy(dtype=bool)
    wide["visit_status"] = _VISIT_STATUSES[np.select([seen, gone], [0, 1], default=2)]
    visit = wide["visit_month"].astype(int).to_numpy()
    keys = {
        "USUBJID": wide["subject_id"].to_numpy(),
        "SITEID": wide["site"].to_numpy(),
        "ARM": wide["arm"].to_numpy(),
        "TRTFL": _yn(wide["treated"]),
        "AVISITN": visit,
        "VISSTAT": wide["visit_status"].to_numpy(),
    }
    # The records are built as columns, one block of rows per parameter (then RESP), and sorted
    # once; every text is one object per distinct value (see _share_strings).
    base = outcomes.loc[outcomes["visit_month"] == 0].set_index("subject_id")
    blocks = []  # (parameter, {column: values}); a column a block lacks is empty there
    post = visit > 0
    for m in config.MEASURES:
        code = config.PARAMCD[m]
        b = _float(wide["subject_id"].map(base[m]))
        v = _float(wide[m])
        chg = v - b
        with np.errstate(divide="ignore", invalid="ignore"):
            pchg = 100 * chg / np.where(b != 0, b, np.nan)
        ablfl = np.where((visit == 0) & ~np.isnan(v), "Y", None).astype(object)
        blocks.append((code, {**keys, "ABLFL": ablfl, "AVAL": v, "BASE": b, "CHG": chg, "PCHG": pchg}))
        if code in config.MCID_PARAMS:
            met = endpoints.mcid(m, b, v).to_numpy(dtype=float, na_value=np.nan)
            avalc = _yn(pd.array(np.where(np.isnan(met), None, met == 1), dtype="boolean"))
            blocks.append((config.MCID_PARAMS[code], {c: a[post] for c, a in {**keys, "AVAL": met, "AVALC": avalc}.items()}))
    long = _status_at(tables, config.POST_BASELINE_VISITS, **thresholds)
    status = long.merge(wide[["subject_id", "visit_month", "visit_status"]], on=["subject_id", "visit_month"], how="left")
    crit1, crit2 = criteria(**thresholds)
    reason = status["reason"].astype(object).to_numpy()
    n_resp = len(status)
    blocks.append(
        (
            "RESP",
            {
                "USUBJID": status["subject_id"].to_numpy(),
                "SITEID": status["site"].to_numpy(),
                "ARM": status["arm"].to_numpy(),
                "TRTFL": _yn(status["treated"]),
                "AVISITN": status["visit_month"].astype(int).to_numpy(),
                "VISSTAT": status["visit_status"].to_numpy(),
                "AVAL": status["responder"].to_numpy(dtype=float, na_value=np.nan),
                "AVALC": _yn(status["responder"]),
                "CRIT1": _repeat(crit1, n_resp),
                "CRIT1FL": _yn(status["vas_met"]),
                "CRIT2": _repeat(crit2, n_resp),
                "CRIT2FL": _yn(status["odi_met"]),
                "NEREAS": _share(np.where(pd.isna(reason) | (reason == ""), None, reason).astype(object)),
            },
        )
    )
    sizes = [len(cols["USUBJID"]) for _, cols in blocks]
    starts = np.cumsum([0, *sizes])
    paramn = np.repeat([EFFICACY_PARAMS[code][0] for code, _ in blocks], sizes).astype(np.int64)
    avisitn = np.concatenate([cols["AVISITN"] for _, cols in blocks]).astype(np.int64)
    who, people = pd.factorize(np.concatenate([cols["USUBJID"] for _, cols in blocks]), sort=True)  # ids' order
    order = np.lexsort((avisitn, paramn, who))  # stable, as a mergesort by USUBJID, PARAMN, AVISITN
    at = np.empty(len(order), dtype=np.intp)
    at[order] = np.arange(len(order))  # where each built row goes

    def column(name, fill=None):  # ``name`` in the sorted order, ``fill`` in the blocks without it
        out = np.full(len(order), fill) if isinstance(fill, float) else _repeat(fill, len(order))
        for (_, cols), start, size in zip(blocks, starts, sizes):
            if name in cols:
                out[at[start : start + size]] = cols[name]
        return out

    def per_block(value):  # ``value(PARAMCD)`` on each block's rows, in the sorted order
        return np.repeat(np.array([value(code) for code, _ in blocks], dtype=object), sizes)[order]

    one_row = np.empty(len(people), dtype=np.intp)
    one_row[who] = np.arange(len(who))  # a row of each participant (which one does not matter)
    out = {
        "STUDYID": _repeat(STUDYID, len(order)),
        "USUBJID": np.append(np.asarray(people, dtype=object), None)[who[order]],
        "PARAMCD": per_block(lambda code: code),
        "PARAM": per_block(lambda code: EFFICACY_PARAMS[code][1]),
        "PARAMN": paramn[order],
        "AVISIT": _avisit(avisitn[order]),
        "AVISITN": avisitn[order],
    }
    for name in ("SITEID", "ARM"):  # the participant's (subjects table): shared over the participants
        built = np.concatenate([cols[name] for _, cols in blocks])
        out[name] = _share(built[one_row])[who[order]]
    for name in ("TRTFL", "VISSTAT", "ABLFL", "AVALC", "CRIT1", "CRIT1FL", "CRIT2", "CRIT2FL", "NEREAS"):
        out[name] = column(name)
    for name in ("AVAL", "BASE", "CHG", "PCHG"):
        out[name] = column(name, np.nan)
    return pd.DataFrame({c: out[c] for c in ADEFF_COLUMNS}, copy=False)  # the arrays are new: no copy, one block each


def admri(tables) -> pd.DataFrame:
    """MRI dataset (ADMRI, a BDS): one row per participant, imaging visit present in the data and
    parameter (``T2NP``, ``PFIRR``, ``DISCHT``).

    BASE is the month-0 value; for ``PFIRR`` without a month-0 grade, the screening grade of ADSL
    (PFIRRSCR).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`ADMRI_COLUMNS` (data/derived/README.md), sorted by USUBJID, PARAMN, AVISITN.
    """
    subjects, mri = tables["subjects"], tables["mri"]
    base = mri.loc[mri["visit_month"] == 0].set_index("subject_id")
    d = mri.merge(
        subjects[["subject_id", "arm", "site", "pfirrmann_grade"]].rename(columns={"pfirrmann_grade": "screening_grade"}),
        on="subject_id",
        how="left",
    )
    visit = d["visit_month"].astype(int).to_numpy()
    ids, sites, arms = (_share(d[c].to_numpy(dtype=object)) for c in ("subject_id", "site", "arm"))  # once, not per parameter
    frames = []
    for code, (col, _, _) in MRI_PARAMS.items():
        v = _float(d[col])
        b = _float(d["subject_id"].map(base[col]))
        if code == "PFIRR":
            b = np.where(np.isnan(b), _float(d["screening_grade"]), b)
        frames.append(
            pd.DataFrame(
                {
                    "STUDYID": STUDYID,
                    "USUBJID": ids,
                    "SITEID": sites,
                    "ARM": arms,
                    "PARAMCD": code,
                    "AVISITN": visit,
                    "ABLFL": np.where((visit == 0) & ~np.isnan(v), "Y", None).astype(object),
                    "AVAL": v,
                    "BASE": b,
                    "CHG": v - b,
                }
            )
        )
    cols = ["STUDYID", "USUBJID", "SITEID", "ARM", "PARAMCD", "AVISITN", "ABLFL", "AVAL", "BASE", "CHG"]
    out = pd.concat(frames, ignore_index=True) if len(d) else pd.DataFrame(columns=cols)
    out["PARAMN"] = out["PARAMCD"].map({k: v[1] for k, v in MRI_PARAMS.items()})
    out["PARAM"] = out["PARAMCD"].map({k: v[2] for k, v in MRI_PARAMS.items()})
    out["AVISIT"] = _avisit(out["AVISITN"])
    out = out.reindex(columns=ADMRI_COLUMNS)
    return out.sort_values(["USUBJID", "PARAMN", "AVISITN"], kind="mergesort").reset_index(drop=True)


def adtte(adsl: pd.DataFrame, adeff: pd.DataFrame) -> pd.DataFrame:
    """Time to first response (ADTTE, PARAMCD ``TTRESP``; RESULTS_CONTRACT.md).

    An event at the first post-baseline visit at which the participant is a responder (ADEFF
    RESP); otherwise censored at the last post-baseline visit at which they were evaluable.
    Participants never evaluable after baseline have no row (count them from ADSL).

    Parameters
    ----------
    adsl, adeff : DataFrame
        The run's ADSL (baseline covariates BVAS, BODI) and ADEFF (the RESP records).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`ADTTE_COLUMNS`: AVAL (months), CNSR (1 censored, 0 event), INTLO and INTHI
        (the interval (INTLO, INTHI] holding the true time: for an event, INTLO = the last
        evaluable visit before it, 0 if none, INTHI = AVAL; censored: INTLO = AVAL, INTHI = inf),
        NEVAL (evaluable post-baseline visits); sorted by USUBJID.
    """
    rows = (adeff["PARAMCD"] == "RESP") & adeff["AVAL"].notna()
    resp = adeff.loc[rows, ["USUBJID", "SITEID", "ARM", "AVISITN", "AVAL"]].sort_values(["USUBJID", "AVISITN"], kind="mergesort")
    d = pd.DataFrame(
        {
            "USUBJID": resp["USUBJID"].to_numpy(dtype=object),
            "SITEID": resp["SITEID"].to_numpy(dtype=object),
            "ARM": resp["ARM"].to_numpy(dtype=object),
            "VISIT": resp["AVISITN"].to_numpy(dtype=float),
            "RESP": resp["AVAL"].to_numpy(dtype=float) == 1,
        }
    )
    by = d.groupby("USUBJID", sort=True)["VISIT"]
    d["PREV"] = by.shift(1).fillna(0.0)  # the evaluable visit before (0: none after baseline)
    first = d.drop_duplicates("USUBJID").set_index("USUBJID")  # each participant's first evaluable visit
    hit = d[d["RESP"]].drop_duplicates("USUBJID").set_index("USUBJID").reindex(first.index)  # the first response
    last = by.last().reindex(first.index)
    event = hit["VISIT"].notna().to_numpy()
    rows = pd.DataFrame(
        {
            "USUBJID": first.index.to_numpy(dtype=object),
            "SITEID": first["SITEID"].to_numpy(),
            "ARM": first["ARM"].to_numpy(),
            "AVAL": np.where(event, hit["VISIT"], last).astype(float),
            "CNSR": np.where(event, 0, 1),
            "EVNTDESC": np.where(event, "first response", "censored at the last evaluable visit").astype(object),
            "INTLO": np.where(event, hit["PREV"], last).astype(float),
            "INTHI": np.where(event, hit["VISIT"], np.inf).astype(float),
            "NEVAL": by.size().reindex(first.index).to_numpy(dtype=np.int64),
        }
    )
    out = rows
    base = adsl.set_index("USUBJID")
    out["STUDYID"] = STUDYID
    out["PARAMCD"] = "TTRESP"
    out["PARAM"] = "Time to first response (months)"
    out["BVAS"] = out["USUBJID"].map(base["BVAS"]).astype("Float64")
    out["BODI"] = out["USUBJID"].map(base["BODI"]).astype("Float64")
    out["CNSR"] = out["CNSR"].astype(int)
    return out[ADTTE_COLUMNS]


def adae(tables, adsl: pd.DataFrame) -> pd.DataFrame:
    """Adverse events (ADAE) with the participant's arm and the safety and treatment-emergent flags.

    TRTEMFL is ``Y`` for an event of the safety population starting on or after the procedure
    (ASTDY >= 0, or missing: counted as emergent).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`ADAE_COLUMNS` (data/derived/README.md); sorted by USUBJID, ASTDY, AEDECOD.
    """
    ae = tables["adverse_events"]
    d = ae.merge(adsl[["USUBJID", "ARM", "SAFFL"]].rename(columns={"USUBJID": "subject_id"}), on="subject_id", how="left")
    d = d.sort_values(["subject_id", "onset_day", "term"], kind="mergesort").reset_index(drop=True)
    day = _float(d["onset_day"])
    with np.errstate(invalid="ignore"):
        emergent = (d["SAFFL"] == "Y").to_numpy(dtype=bool) & (np.isnan(day) | (day >= 0))
    out = pd.DataFrame(
        {
            "STUDYID": STUDYID,
            "USUBJID": d["subject_id"],
            "ARM": d["ARM"],
            "SAFFL": d["SAFFL"],
            "TRTEMFL": np.where(emergent, "Y", "N").astype(object),
            "AEDECOD": d["term"],
            "ASTDY": d["onset_day"],
            "AESEV": d["severity"],
            "AESER": _yn(d["serious"]),
            "AEREL": _yn(d["related"]),
        },
        index=d.index,
    )
    return out[ADAE_COLUMNS]


def adis(tables, adsl: pd.DataFrame) -> pd.DataFrame:
    """Immunogenicity (ADIS, a BDS): one row per sample and parameter (``HLA1``, ``HLA2``,
    ``HLAANY``, ``DSA``); AVAL 1 positive, 0 negative, empty without a result.

    ``HLAANY`` is 1 when either class is positive, 0 only when both are negative, else empty.
    No row when the dataset has no immunology table.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`ADIS_COLUMNS` (data/derived/README.md); sorted by USUBJID, PARAMN, AVISITN.
    """
    imm = tables.get("immunology") if hasattr(tables, "get") else None
    if imm is None or not len(imm):
        return pd.DataFrame({c: pd.Series(dtype=float if c in ("AVAL", "AVISITN", "PARAMN") else object) for c in ADIS_COLUMNS})
    d = imm.merge(adsl[["USUBJID", "ARM"]].rename(columns={"USUBJID": "subject_id"}), on="subject_id", how="left")
    c1, c2 = d["anti_hla_class_i"].astype("boolean"), d["anti_hla_class_ii"].astype("boolean")
    either = (c1.fillna(False) | c2.fillna(False)).astype("boolean")
    either[c1.isna() & c2.isna()] = pd.NA
    either[(c1.isna() | c2.isna()) & ~(c1.fillna(False) | c2.fillna(False))] = pd.NA  # negative needs both
    values = {"HLA1": c1, "HLA2": c2, "HLAANY": either, "DSA": d["dsa"].astype("boolean")}
    visit = d["visit_month"].astype(int).to_numpy()
    ids, arms = (_share(d[c].to_numpy(dtype=object)) for c in ("subject_id", "ARM"))  # once, not per parameter
    avisit = _avisit(visit)
    frames = []
    for code, v in values.items():
        aval = v.to_numpy(dtype=float, na_value=np.nan)
        flags = _POS_NEG[np.where(np.isnan(aval), 2, np.where(aval == 1, 0, 1))]
        frames.append(
            pd.DataFrame(
                {
                    "STUDYID": STUDYID,
                    "USUBJID": ids,
                    "ARM": arms,
                    "PARAMCD": code,
                    "PARAMN": IMMUNOLOGY_PARAMS[code][0],
                    "PARAM": IMMUNOLOGY_PARAMS[code][1],
                    "AVISIT": avisit,
                    "AVISITN": visit,
                    "ABLFL": np.where(visit == 0, "Y", None).astype(object),
                    "AVAL": aval,
                    "AVALC": flags,
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)[ADIS_COLUMNS]
    return out.sort_values(["USUBJID", "PARAMN", "AVISITN"], kind="mergesort").reset_index(drop=True)


def adds(tables) -> pd.DataFrame:
    """The screening log (ADDS): one row per screened candidate, for the CONSORT diagram.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`ADDS_COLUMNS`: SCRID, DSDECOD (``randomized`` or ``excluded``), DSREAS (the
        exclusion reason); no row when the dataset has no screening table.
    """
    scr = tables.get("screening") if hasattr(tables, "get") else None
    if scr is None or not len(scr):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ADDS_COLUMNS})
    return pd.DataFrame(
        {
            "STUDYID": STUDYID,
            "SCRID": scr["screening_id"].to_numpy(),
            "DSDECOD": scr["outcome"].to_numpy(),
            "DSREAS": scr["exclusion_reason"].astype(object).where(scr["exclusion_reason"].notna(), None).to_numpy(),
        }
    )[ADDS_COLUMNS]


def derive_all(tables, visit_month: int = config.PRIMARY_VISIT, **thresholds) -> dict:
    """Every analysis dataset of one run: {name: DataFrame} for the names of :data:`DATASETS`.

    Parameters
    ----------
    tables : dict of DataFrame
        Validated raw tables.
    visit_month : int
        The run's primary visit (ADSL's EVALFL, RESPFL, NEREAS).
    **thresholds
        The run's responder rule (ADSL RESPFL; ADEFF RESP, CRIT1FL, CRIT2FL; ADTTE).

    Returns
    -------
    dict
    """
    sl = adsl(tables, visit_month, **thresholds)
    eff = adeff(tables, **thresholds)
    derived = {
        "adsl": sl,
        "adeff": eff,
        "admri": admri(tables),
        "adtte": adtte(sl, eff),
        "adae": adae(tables, sl),
        "adis": adis(tables, sl),
        "adds": adds(tables),
        "adice": adice(tables, sl),
    }
    # the BDS datasets, the largest, are built with their texts shared; the others are shared here
    return {name: df if name in _BUILT_SHARED else _share_strings(df) for name, df in derived.items()}


_BUILT_SHARED = ("adeff", "admri", "adis")


def _share_strings(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` whose text columns hold one object per distinct value: a BDS dataset repeats
    "Month 12" or a participant's id on many rows, each row its own copy otherwise (on a cohort of
    11,400 participants, about 450 MB of the analysis datasets' memory). Same values and dtypes."""
    out = df.copy()
    for c in out.select_dtypes(include=object).columns:
        out[c] = _share(out[c].to_numpy())
    return out


def _share(values: np.ndarray) -> np.ndarray:
    """A copy of the object array ``values`` holding one object per distinct value."""
    codes, uniques = pd.factorize(values)
    shared = values.copy()
    found = codes >= 0  # empty cells (None, NaN) stay as they were
    shared[found] = np.asarray(uniques, dtype=object)[codes[found]]
    return shared


# --------------------------------------------------------------------------- analysis views

POPULATIONS = ("evaluable", "nri", "treated")
POPULATION_LABELS = {
    "evaluable": "Evaluable (as randomised, responder status known)",
    "nri": "All randomised (not evaluable counted as non-responders)",
    "treated": "Treated (as randomised, received the procedure)",
}
DEPRECATED_POPULATIONS = {"per_protocol": "treated"}  # old name, accepted as an alias


def responders(adsl: pd.DataFrame, adeff: pd.DataFrame, visit_month: int) -> pd.DataFrame:
    """The responder view: one row per randomised participant at one visit.

    ADSL (without its primary-visit EVALVIS, EVALFL, RESPFL, NEREAS) joined with the ADEFF
    ``RESP`` record at ``visit_month``.

    Parameters
    ----------
    adsl, adeff : DataFrame
        The run's ADSL and ADEFF.
    visit_month : int
        The visit.

    Returns
    -------
    pandas.DataFrame
        The ADSL columns plus AVISITN, AVAL (1 responder, 0 not, NaN not evaluable), AVALC,
        CRIT1FL, CRIT2FL, NEREAS and EVALFL (``Y`` when AVAL is known); sorted by USUBJID.
    """
    resp = adeff.loc[
        (adeff["PARAMCD"] == "RESP") & (adeff["AVISITN"] == visit_month),
        ["USUBJID", "AVISITN", "AVAL", "AVALC", "CRIT1FL", "CRIT2FL", "NEREAS"],
    ]
    out = adsl.drop(columns=["EVALVIS", "EVALFL", "RESPFL", "NEREAS"]).merge(resp, on="USUBJID", how="left")
    out["AVISITN"] = int(visit_month)
    out["EVALFL"] = np.where(out["AVAL"].notna(), "Y", "N").astype(object)
    return out


def population(resp: pd.DataFrame, name: str) -> pd.DataFrame:
    """The analysis population of the responder endpoint.

    - ``evaluable``: every randomised participant; the not evaluable have a missing AVAL and
      drop out of the proportions (the published analysis);
    - ``nri``: every randomised participant (NRIFL), not evaluable counted as non-responders
      (AVAL 0, AVALC ``N``);
    - ``treated``: participants who received the allocated procedure (TRTFL), analysed in their
      randomised arm (the not evaluable drop out as in ``evaluable``). This is not a per-protocol
      population (no protocol deviation is recorded in the data); ``per_protocol``, its former
      name, is accepted as a deprecated alias.

    Labels for headings are in :data:`POPULATION_LABELS`.

    Parameters
    ----------
    resp : DataFrame
        The responder view (:func:`responders`).
    name : str
        One of :data:`POPULATIONS`.

    Returns
    -------
    pandas.DataFrame
        A filtered or filled copy of ``resp``.
    """
    name = DEPRECATED_POPULATIONS.get(name, name)
    if name == "evaluable":
        return resp.copy()
    if name == "nri":
        out = resp.copy()
        out["AVAL"] = out["AVAL"].fillna(0.0)
        out["AVALC"] = out["AVALC"].where(out["AVALC"].notna(), "N")
        return out
    if name == "treated":
        return resp[resp["TRTFL"] == "Y"].copy()
    raise ValueError(f"population must be one of {POPULATIONS}, not {name!r}")


WIDE_NAMES = {"VAS": "vas", "ODI": "odi", "PCS": "pcs", "MCS": "mcs"}


def wide_outcomes(adeff: pd.DataFrame, measures=("VAS", "ODI")) -> pd.DataFrame:
    """The multiple-imputation and threshold-grid view: one row per randomised participant.

    Parameters
    ----------
    adeff : DataFrame
        The run's ADEFF.
    measures : sequence of str
        PARAMCD of the measures to spread (``VAS``, ``ODI``, ``PCS``, ``MCS``).

    Returns
    -------
    pandas.DataFrame
        ``subject_id``, ``arm``, ``site``, ``treated`` (bool) and ``<m>_<v>`` (``vas``, ``odi``,
        ``pcs``, ``mcs``; float, NaN when missing) for every scheduled visit v; sorted by
        subject_id. The column names are those :func:`respine_nb.stats.mi_risk_difference` and
        :func:`respine_nb.stats.threshold_grid` read.
    """
    subj = adeff[["USUBJID", "ARM", "SITEID", "TRTFL"]].drop_duplicates("USUBJID").sort_values("USUBJID", kind="mergesort")
    wide = pd.DataFrame(
        {
            "subject_id": subj["USUBJID"].to_numpy(),
            "arm": subj["ARM"].to_numpy(),
            "site": subj["SITEID"].to_numpy(),
            "treated": (subj["TRTFL"] == "Y").to_numpy(),
        }
    )
    # each measure's rows found once, not once per visit (a missing code or visit matches nothing)
    is_code = {code: (adeff["PARAMCD"] == code).to_numpy(dtype=bool, na_value=False) for code in measures}
    visit = adeff["AVISITN"].to_numpy(dtype=float, na_value=np.nan)
    values = adeff[["USUBJID", "AVAL"]].set_index("USUBJID")["AVAL"]  # only the value read, by participant
    for v in config.VISITS:
        at_visit = visit == v
        for code in measures:
            at = values[is_code[code] & at_visit]
            wide[f"{WIDE_NAMES[code]}_{v}"] = wide["subject_id"].map(at).astype(float)
    return wide


STATUSES = ("responder", "non-responder", "not evaluable", "discontinued")


def status_by_visit(adeff: pd.DataFrame) -> pd.DataFrame:
    """The durability view: responder status of every participant at every post-baseline visit.

    Returns
    -------
    pandas.DataFrame
        Columns USUBJID, ARM, AVISITN, STATUS (one of :data:`STATUSES`: from ADEFF RESP AVAL 1
        or 0, else ``discontinued`` when VISSTAT says so, else ``not evaluable``); sorted by
        ARM, USUBJID, AVISITN.
    """
    d = adeff[adeff["PARAMCD"] == "RESP"]
    aval = d["AVAL"].to_numpy(dtype=float)
    status = np.select(
        [aval == 1, aval == 0, (d["VISSTAT"] == "discontinued").to_numpy()],
        ["responder", "non-responder", "discontinued"],
        default="not evaluable",
    )
    return (
        pd.DataFrame(
            {
                "USUBJID": d["USUBJID"].to_numpy(),
                "ARM": d["ARM"].to_numpy(),
                "AVISITN": d["AVISITN"].to_numpy(),
                "STATUS": status,
            }
        )
        .sort_values(["ARM", "USUBJID", "AVISITN"], kind="mergesort")
        .reset_index(drop=True)
    )


def paired_visit(admri: pd.DataFrame, visit_month: int | None = None, paramcd: str = "T2NP") -> pd.DataFrame:
    """The change view of one MRI parameter: participants with a baseline and a value at the visit.

    Parameters
    ----------
    admri : DataFrame
        The run's ADMRI.
    visit_month : int, optional
        The visit; None: every post-baseline imaging visit (one row per participant and visit).
    paramcd : str
        ``T2NP`` (default), ``PFIRR`` or ``DISCHT``.

    Returns
    -------
    pandas.DataFrame
        Columns USUBJID, ARM, SITEID, AVISITN, BASE, AVAL, CHG (floats); sorted by USUBJID, AVISITN.
    """
    d = admri[admri["PARAMCD"] == paramcd]
    d = d[d["AVISITN"] == visit_month] if visit_month is not None else d[d["AVISITN"] > 0]
    d = d.dropna(subset=["AVAL", "BASE"]).sort_values(["USUBJID", "AVISITN"], kind="mergesort")
    return pd.DataFrame(
        {
            "USUBJID": d["USUBJID"].astype(str).to_numpy(),
            "ARM": d["ARM"].astype(str).to_numpy(),
            "SITEID": d["SITEID"].astype(str).to_numpy(),
            "AVISITN": d["AVISITN"].astype(int).to_numpy(),
            "BASE": d["BASE"].astype(float).to_numpy(),
            "AVAL": d["AVAL"].astype(float).to_numpy(),
            "CHG": d["CHG"].astype(float).to_numpy(),
        }
    )


def mri_by_visit(admri: pd.DataFrame, visit_month: int) -> pd.DataFrame:
    """The MRI parameters side by side: one row per participant imaged at ``visit_month``.

    Returns
    -------
    pandas.DataFrame
        Columns USUBJID, ARM, AVISITN, T2NP, PFIRR, DISCHT (floats, NaN when missing); sorted by USUBJID.
    """
    d = admri[admri["AVISITN"] == visit_month]
    wide = d.pivot(index="USUBJID", columns="PARAMCD", values="AVAL").reindex(columns=list(MRI_PARAMS))
    arms = d.drop_duplicates("USUBJID").set_index("USUBJID")["ARM"]
    out = pd.DataFrame(
        {"USUBJID": wide.index.to_numpy(), "ARM": wide.index.map(arms).to_numpy(), "AVISITN": int(visit_month)},
        index=range(len(wide)),
    )
    for code in MRI_PARAMS:
        out[code] = wide[code].to_numpy(dtype=float)
    return out


# --------------------------------------------------------------------------- intercurrent events (ICH E9(R1))

ADICE_COLUMNS = ["STUDYID", "USUBJID", "SITEID", "ARM", "ICETYPE", "ICEMON"]
# The events whose strategy the primary estimand chooses (parameter ice_strategy); rescue medication
# and a procedure not received are handled by treatment policy whatever the strategy.
STRATEGY_EVENTS = ("spine_surgery", "other_spinal_injection")
NO_EVENT_TEXT = "no intercurrent event recorded"


def adice(tables, adsl: pd.DataFrame) -> pd.DataFrame:
    """Intercurrent events (ADICE, ADaM-lite): one row per recorded event of a randomised participant.

    A dataset without the optional ``intercurrent_events`` table (data contract v1.1) has no
    event recorded: the result then has no row.

    Parameters
    ----------
    tables : dict of DataFrame
        Validated raw tables (``intercurrent_events`` optional).
    adsl : DataFrame
        The run's ADSL (site and arm of each participant).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`ADICE_COLUMNS`: ICETYPE (``rescue_medication``, ``spine_surgery``,
        ``other_spinal_injection``, ``treatment_not_received``), ICEMON (months after the
        procedure, float); sorted by USUBJID, ICEMON, ICETYPE.
    """
    ice = tables.get("intercurrent_events") if hasattr(tables, "get") else None
    if ice is None or not len(ice):
        return pd.DataFrame({c: pd.Series(dtype=float if c == "ICEMON" else object) for c in ADICE_COLUMNS})
    sl = adsl[["USUBJID", "SITEID", "ARM"]].rename(columns={"USUBJID": "subject_id"})
    d = ice.merge(sl, on="subject_id", how="inner")
    out = pd.DataFrame(
        {
            "STUDYID": STUDYID,
            "USUBJID": d["subject_id"].astype(object).to_numpy(),
            "SITEID": d["SITEID"].to_numpy(),
            "ARM": d["ARM"].to_numpy(),
            "ICETYPE": d["event"].astype(object).to_numpy(),
            "ICEMON": _float(d["month"]),
        }
    )
    return out.sort_values(["USUBJID", "ICEMON", "ICETYPE"], kind="mergesort").reset_index(drop=True)[ADICE_COLUMNS]


def first_strategy_event(ice: pd.DataFrame, events=STRATEGY_EVENTS) -> pd.Series:
    """Month of each participant's first intercurrent event of the kinds ``events``.

    Parameters
    ----------
    ice : DataFrame
        ADICE (:func:`adice`).
    events : sequence of str
        ICETYPE values (default: spine surgery and other spinal injections).

    Returns
    -------
    pandas.Series
        USUBJID -> ICEMON of the first such event (participants without one are absent).
    """
    d = ice[ice["ICETYPE"].isin(events)]
    return d.groupby("USUBJID", sort=True)["ICEMON"].min().astype(float)


def composite_responders(resp: pd.DataFrame, ice: pd.DataFrame, visit_month: int) -> pd.DataFrame:
    """The responder view under the composite strategy (``primary.composite.risk_difference``).

    A participant with spine surgery or another spinal injection at or before ``visit_month`` is a
    non-responder (AVAL 0, AVALC ``N``, EVALFL ``Y``, NEREAS empty), whether or not they were
    evaluable; every other participant is as in ``resp``. ICEFL says who was set so.

    Parameters
    ----------
    resp : DataFrame
        The responder view (:func:`responders`) at ``visit_month``.
    ice : DataFrame
        ADICE (:func:`adice`; no row: no event, ``resp`` unchanged).
    visit_month : int
        The visit of ``resp``.

    Returns
    -------
    pandas.DataFrame
        A copy of ``resp`` with the column ICEFL (``Y``/``N``) added.
    """
    first = first_strategy_event(ice)
    hit = resp["USUBJID"].map(first).le(visit_month).fillna(False).to_numpy(dtype=bool)
    out = resp.copy()
    out["AVAL"] = out["AVAL"].astype(float).where(~hit, 0.0)
    out["AVALC"] = out["AVALC"].astype(object).where(~hit, "N")
    out["EVALFL"] = out["EVALFL"].astype(object).where(~hit, "Y")
    out["NEREAS"] = out["NEREAS"].astype(object).where(~hit, None)
    out["ICEFL"] = np.where(hit, "Y", "N").astype(object)
    return out


def hypothetical_wide(wide: pd.DataFrame, ice: pd.DataFrame, measures=("vas", "odi", "pcs", "mcs")) -> pd.DataFrame:
    """The wide outcomes under the hypothetical strategy (``primary.hypothetical.risk_difference``).

    Every value observed after a participant's first spine surgery or other spinal injection
    (post-baseline visits at or after the event's month) is set missing, for VAS and ODI and for
    the auxiliary measures (SF-36 PCS and MCS) alike, so that the imputation model does not learn
    from outcomes the event may have changed; the missing values are then imputed as in
    ``primary.mi`` (:func:`respine_nb.stats.mi_risk_difference`). Baselines are never removed.

    Parameters
    ----------
    wide : DataFrame
        :func:`wide_outcomes` output (``subject_id`` and ``<m>_<v>`` columns).
    ice : DataFrame
        ADICE (:func:`adice`; no row: ``wide`` unchanged).
    measures : sequence of str
        Column prefixes to censor (those absent from ``wide`` are skipped).

    Returns
    -------
    pandas.DataFrame
        A copy of ``wide``.
    """
    first = wide["subject_id"].map(first_strategy_event(ice)).to_numpy(dtype=float)
    out = wide.copy()
    for v in config.POST_BASELINE_VISITS:
        after = ~np.isnan(first) & (first <= v)
        cols = [f"{m}_{v}" for m in measures if f"{m}_{v}" in out]
        out.loc[after, cols] = np.nan
    return out


def strategy_events(ice: pd.DataFrame, visit_month: int) -> pd.DataFrame:
    """Participants per arm with a spine surgery or other spinal injection at or before the visit,
    and with each kind of intercurrent event at any time, for the estimand section.

    Returns
    -------
    pandas.DataFrame
        Columns ``event`` (the kinds of the data contract, then ``surgery or injection by month
        <visit>``), one count column per arm (participants, not events).
    """
    kinds = ("rescue_medication", *STRATEGY_EVENTS, "treatment_not_received")
    rows = []
    for kind in kinds:
        d = ice[ice["ICETYPE"] == kind]
        rows.append([kind.replace("_", " "), *[int(d.loc[d["ARM"] == a, "USUBJID"].nunique()) for a in config.ARMS]])
    first = ice[ice["ICETYPE"].isin(STRATEGY_EVENTS) & (ice["ICEMON"] <= visit_month)]
    rows.append(
        [
            f"surgery or injection by month {visit_month}",
            *[int(first.loc[first["ARM"] == a, "USUBJID"].nunique()) for a in config.ARMS],
        ]
    )
    return pd.DataFrame(rows, columns=["event", *config.ARMS])


def strategy_note(ice: pd.DataFrame, visit_month: int) -> str:
    """What the intercurrent events give the strategies to act on, as a suffix for a row's ``method``.

    Returns
    -------
    str
        ``"; no intercurrent event recorded"`` when ADICE has no row,
        ``"; no spine surgery or other spinal injection recorded by month <v>"`` when none is at or
        before the visit (the strategy then changes nothing), else ``""``.
    """
    if not len(ice):
        return f"; {NO_EVENT_TEXT}"
    if not (ice["ICETYPE"].isin(STRATEGY_EVENTS) & (ice["ICEMON"] <= visit_month)).any():
        return f"; no spine surgery or other spinal injection recorded by month {visit_month}"
    return ""


def auxiliary_columns(wide: pd.DataFrame, prefixes=("pcs", "mcs")) -> list:
    """The auxiliary variables of the imputation model among the wide columns: the SF-36 PCS and
    MCS at every visit (``pcs_<v>``, ``mcs_<v>``), in the frame's order.

    Parameters
    ----------
    wide : DataFrame
        :func:`wide_outcomes` output, with the ``PCS`` and ``MCS`` measures.
    prefixes : sequence of str
        Column prefixes of the auxiliary measures.

    Returns
    -------
    list of str
        For :func:`respine_nb.stats.mi_risk_difference` ``auxiliary=``; empty when none is present.
    """
    return [c for c in wide.columns if str(c).split("_")[0] in prefixes and str(c).rsplit("_", 1)[-1].isdigit()]

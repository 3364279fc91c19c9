"""ADaM-lite analysis datasets, derived from validated raw tables by pure functions.

- ``adsl``: one row per participant: arm, baseline covariates, analysis flags.
- ``adeff``: participant x visit x measure: baseline, value, change, % change, MCID flag,
  and the VAS/ODI criterion flags and responder status of that participant at that visit.
- ``admri``: participant x imaging visit: T2, Pfirrmann grade and disc height with their
  baseline values and changes.
- ``adtte``: one row per participant evaluable at some post-baseline visit: time to first
  response, event flag, and the interval (left, right] for interval-censored analyses.
- ``adae``: adverse events with arm and safety flag.

No function mutates its input. Thresholds are keyword arguments (defaults from config).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import config, endpoints

NOT_EVALUABLE_REASONS = ("discontinued", "missed visit", "baseline missing", "component missing")


def _thresholds(kw: dict) -> dict:
    allowed = {"vas_abs_mm", "vas_rel", "odi_rel", "odi_rule", "odi_abs"}
    unknown = set(kw) - allowed
    if unknown:
        raise TypeError(f"unknown threshold(s): {sorted(unknown)}")
    return kw


def responders(tables, visit_month: int = config.PRIMARY_VISIT, **thresholds) -> pd.DataFrame:
    """Primary-endpoint status of every randomised participant at one visit.

    Parameters
    ----------
    tables : Dataset or dict of DataFrame
        Validated raw tables (``subjects`` and ``outcomes`` are used).
    visit_month : int
        The visit (default 12).
    **thresholds
        ``vas_abs_mm``, ``vas_rel``, ``odi_rel``, ``odi_rule``, ``odi_abs`` (see endpoints).

    Returns
    -------
    pandas.DataFrame
        One row per participant, sorted by subject_id: ``subject_id``, ``arm``, ``site``,
        ``treated``, ``base_vas``, ``vas``, ``base_odi``, ``odi``, ``vas_met``, ``odi_met``,
        ``responder`` (nullable booleans), ``evaluable`` (bool) and ``reason`` (why not
        evaluable: one of NOT_EVALUABLE_REASONS, or empty).
    """
    _thresholds(thresholds)
    subjects, outcomes = tables["subjects"], tables["outcomes"]
    cols = ["subject_id", "vas_pain", "odi"]
    base = outcomes.loc[outcomes["visit_month"] == 0, cols].rename(columns={"vas_pain": "base_vas", "odi": "base_odi"})
    at = outcomes.loc[outcomes["visit_month"] == visit_month, cols].rename(columns={"vas_pain": "vas"})
    at["seen"] = True
    df = (
        subjects[["subject_id", "arm", "site", "treated", "discontinuation_month"]]
        .merge(base, on="subject_id", how="left")
        .merge(at, on="subject_id", how="left")
        .sort_values("subject_id", kind="mergesort")
        .reset_index(drop=True)
    )
    status = endpoints.responder_status(df["base_vas"], df["vas"], df["base_odi"], df["odi"], **thresholds)
    df[["vas_met", "odi_met", "responder"]] = status.to_numpy()
    for c in ("vas_met", "odi_met", "responder"):
        df[c] = df[c].astype("boolean")
    df["evaluable"] = df["responder"].notna().to_numpy(dtype=bool)
    seen = df["seen"].notna()
    left = (df["discontinuation_month"] < visit_month).fillna(False).to_numpy(dtype=bool)
    base_missing = (df["base_vas"].isna() & df["base_odi"].isna()).to_numpy(dtype=bool)
    seen = seen.to_numpy(dtype=bool)
    reason = np.select(
        [df["evaluable"].to_numpy(dtype=bool), ~seen & left, ~seen, base_missing],
        ["", "discontinued", "missed visit", "baseline missing"],
        default="component missing",
    )
    df["reason"] = pd.Series(reason, dtype="string")
    return df.drop(columns=["seen", "discontinuation_month"])


def responders_long(tables, **thresholds) -> pd.DataFrame:
    """:func:`responders` at every post-baseline visit, stacked (one row per participant and visit).

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`responders` plus ``visit_month``.
    """
    return pd.concat(
        [responders(tables, v, **thresholds).assign(visit_month=v) for v in config.POST_BASELINE_VISITS], ignore_index=True
    )


def adsl(tables, visit_month: int = config.PRIMARY_VISIT, **thresholds) -> pd.DataFrame:
    """Subject-level analysis dataset.

    Returns
    -------
    pandas.DataFrame
        One row per randomised participant, sorted by subject_id: the subjects columns,
        baseline ``base_vas_pain``, ``base_odi``, ``base_sf36_pcs``, ``base_sf36_mcs``,
        ``base_t2_np_ms``; flags ``randfl`` (all True), ``saffl`` (treated), ``complfl``
        (no discontinuation); ``evalfl`` (evaluable for the responder endpoint at
        ``visit_month``), ``responder`` (nullable), ``not_evaluable_reason``.
    """
    subjects, outcomes, mri = tables["subjects"], tables["outcomes"], tables["mri"]
    base = outcomes.loc[outcomes["visit_month"] == 0, ["subject_id", *config.MEASURES]].rename(
        columns={m: f"base_{m}" for m in config.MEASURES}
    )
    t2 = mri.loc[mri["visit_month"] == 0, ["subject_id", "t2_np_ms"]].rename(columns={"t2_np_ms": "base_t2_np_ms"})
    resp = responders(tables, visit_month, **thresholds)[["subject_id", "evaluable", "responder", "reason"]]
    df = (
        subjects.merge(base, on="subject_id", how="left")
        .merge(t2, on="subject_id", how="left")
        .merge(resp, on="subject_id", how="left")
        .rename(columns={"evaluable": "evalfl", "reason": "not_evaluable_reason"})
    )
    df["randfl"] = True
    df["saffl"] = df["treated"].astype(bool)
    df["complfl"] = df["discontinuation_month"].isna().to_numpy()
    return df.sort_values("subject_id", kind="mergesort").reset_index(drop=True)


def adeff(tables, resp_long: pd.DataFrame | None = None, **thresholds) -> pd.DataFrame:
    """Efficacy dataset: participant x scheduled visit x measure.

    Every participant has a row for every scheduled visit (0, 1, 3, 6, 12, 24) and
    measure, so missed visits are visible (``visit_status``).

    Returns
    -------
    pandas.DataFrame
        Columns ``subject_id``, ``arm``, ``site``, ``visit_month``, ``measure``,
        ``visit_status`` (``observed``, ``missed`` or ``discontinued``), ``baseline``,
        ``value``, ``change`` (value - baseline), ``pct_change`` (100 x change / baseline),
        ``mcid`` (nullable bool; VAS and ODI only), ``vas_met``, ``odi_met``,
        ``responder`` (nullable bools, the participant's primary status at that visit;
        empty at month 0). Sorted by subject_id, visit_month, measure.
    """
    subjects, outcomes = tables["subjects"], tables["outcomes"]
    grid = pd.MultiIndex.from_product(
        [sorted(subjects["subject_id"]), config.VISITS], names=["subject_id", "visit_month"]
    ).to_frame(index=False)
    wide = grid.merge(outcomes.assign(_seen=True), on=["subject_id", "visit_month"], how="left")
    wide = wide.merge(subjects[["subject_id", "arm", "site", "discontinuation_month"]], on="subject_id", how="left")
    gone = (wide["discontinuation_month"] < wide["visit_month"]).fillna(False).to_numpy(dtype=bool)
    seen = wide["_seen"].notna().to_numpy(dtype=bool)
    wide["visit_status"] = np.select([seen, gone], ["observed", "discontinued"], default="missed")
    if resp_long is None:
        resp_long = responders_long(tables, **thresholds)
    status = resp_long[["subject_id", "visit_month", "vas_met", "odi_met", "responder"]]
    wide = wide.merge(status, on=["subject_id", "visit_month"], how="left")
    frames = []
    base = outcomes.loc[outcomes["visit_month"] == 0].set_index("subject_id")
    for m in config.MEASURES:
        f = wide[["subject_id", "arm", "site", "visit_month", "visit_status", "vas_met", "odi_met", "responder"]].copy()
        f["measure"] = m
        f["baseline"] = wide["subject_id"].map(base[m]).astype("Float64")
        f["value"] = wide[m].astype("Float64")
        f["change"] = f["value"] - f["baseline"]
        with np.errstate(divide="ignore", invalid="ignore"):
            pct = 100 * f["change"] / f["baseline"].where(f["baseline"] != 0)
        f["pct_change"] = pct
        f["mcid"] = (
            endpoints.mcid(m, f["baseline"], f["value"]).to_numpy()
            if m in config.MCID
            else pd.array([pd.NA] * len(f), dtype="boolean")
        )
        f.loc[f["visit_month"] == 0, "mcid"] = pd.NA
        frames.append(f)
    out = pd.concat(frames, ignore_index=True)
    for c in ("vas_met", "odi_met", "responder", "mcid"):
        out[c] = out[c].astype("boolean")
    cols = [
        "subject_id",
        "arm",
        "site",
        "visit_month",
        "measure",
        "visit_status",
        "baseline",
        "value",
        "change",
        "pct_change",
        "mcid",
        "vas_met",
        "odi_met",
        "responder",
    ]
    return out[cols].sort_values(["subject_id", "visit_month", "measure"], kind="mergesort").reset_index(drop=True)


def admri(tables) -> pd.DataFrame:
    """MRI dataset: one row per participant and imaging visit present in the data.

    Returns
    -------
    pandas.DataFrame
        Columns ``subject_id``, ``arm``, ``visit_month``, ``t2_np_ms``, ``base_t2_np_ms``,
        ``t2_change``, ``pfirrmann_grade``, ``base_pfirrmann_grade`` (mri month 0, else
        the screening grade of subjects), ``grade_change``, ``disc_height_mm``,
        ``base_disc_height_mm``, ``height_change``. Sorted by subject_id, visit_month.
    """
    subjects, mri = tables["subjects"], tables["mri"]
    base = mri.loc[mri["visit_month"] == 0].set_index("subject_id")
    df = mri.merge(
        subjects[["subject_id", "arm", "pfirrmann_grade"]].rename(columns={"pfirrmann_grade": "screening_grade"}),
        on="subject_id",
        how="left",
    )
    df["base_t2_np_ms"] = df["subject_id"].map(base["t2_np_ms"]).astype("Float64")
    df["t2_change"] = df["t2_np_ms"] - df["base_t2_np_ms"]
    base_grade = df["subject_id"].map(base["pfirrmann_grade"]).astype("Int64")
    df["base_pfirrmann_grade"] = base_grade.fillna(df["screening_grade"]).astype("Int64")
    df["grade_change"] = df["pfirrmann_grade"] - df["base_pfirrmann_grade"]
    df["base_disc_height_mm"] = df["subject_id"].map(base["disc_height_mm"]).astype("Float64")
    df["height_change"] = df["disc_height_mm"] - df["base_disc_height_mm"]
    cols = [
        "subject_id",
        "arm",
        "visit_month",
        "t2_np_ms",
        "base_t2_np_ms",
        "t2_change",
        "pfirrmann_grade",
        "base_pfirrmann_grade",
        "grade_change",
        "disc_height_mm",
        "base_disc_height_mm",
        "height_change",
    ]
    return df[cols].sort_values(["subject_id", "visit_month"], kind="mergesort").reset_index(drop=True)


def adtte(tables, resp_long: pd.DataFrame | None = None, **thresholds) -> pd.DataFrame:
    """Time to first response (RESULTS_CONTRACT.md).

    Event at the first post-baseline visit at which the participant is a responder;
    otherwise censored at the last post-baseline visit at which they were evaluable.
    Participants never evaluable after baseline are left out (count them from adsl).

    Returns
    -------
    pandas.DataFrame
        Columns ``subject_id``, ``arm``, ``site``, ``time`` (months), ``event`` (bool),
        ``left`` and ``right`` (the interval (left, right] holding the true time:
        for an event, left = the last evaluable visit before it, 0 if none; for a
        censored participant, left = time and right = inf), ``n_evaluable_visits``,
        ``base_vas``, ``base_odi``. Sorted by subject_id.
    """
    resp = resp_long if resp_long is not None else responders_long(tables, **thresholds)
    resp = resp[resp["evaluable"]].sort_values(["subject_id", "visit_month"], kind="mergesort")
    rows = []
    for sid, g in resp.groupby("subject_id", sort=True):
        visits = g["visit_month"].to_numpy()
        is_resp = g["responder"].to_numpy(dtype=bool)
        if is_resp.any():
            k = int(np.argmax(is_resp))
            time, event = visits[k], True
            left, right = (visits[k - 1] if k > 0 else 0), visits[k]
        else:
            time, event = visits[-1], False
            left, right = visits[-1], np.inf
        first = g.iloc[0]
        rows.append(
            (
                sid,
                first["arm"],
                first["site"],
                float(time),
                event,
                float(left),
                float(right),
                len(visits),
                first["base_vas"],
                first["base_odi"],
            )
        )
    cols = ["subject_id", "arm", "site", "time", "event", "left", "right", "n_evaluable_visits", "base_vas", "base_odi"]
    out = pd.DataFrame(rows, columns=cols)
    out["event"] = out["event"].astype(bool)
    return out


def adae(tables) -> pd.DataFrame:
    """Adverse events with the participant's arm and safety flag.

    Returns
    -------
    pandas.DataFrame
        The adverse_events columns plus ``arm`` and ``saffl`` (treated); sorted by
        subject_id, onset_day, term.
    """
    ae, subjects = tables["adverse_events"], tables["subjects"]
    df = ae.merge(subjects[["subject_id", "arm", "treated"]], on="subject_id", how="left")
    df["saffl"] = df["treated"].astype(bool)
    return df.drop(columns="treated").sort_values(["subject_id", "onset_day", "term"], kind="mergesort").reset_index(drop=True)


def derive_all(tables, visit_month: int = config.PRIMARY_VISIT, **thresholds) -> dict:
    """All analysis datasets: {"adsl", "adeff", "admri", "adtte", "adae"} -> DataFrame.

    ``visit_month`` is the visit of adsl's evaluability and responder flags.
    """
    long = responders_long(tables, **thresholds)
    return {
        "adsl": adsl(tables, visit_month, **thresholds),
        "adeff": adeff(tables, long, **thresholds),
        "admri": admri(tables),
        "adtte": adtte(tables, long, **thresholds),
        "adae": adae(tables),
    }


POPULATIONS = ("evaluable", "nri", "treated")
POPULATION_LABELS = {
    "evaluable": "Evaluable (as randomised, responder status known)",
    "nri": "All randomised (not evaluable counted as non-responders)",
    "treated": "Treated (as randomised, received the procedure)",
}
DEPRECATED_POPULATIONS = {"per_protocol": "treated"}  # old name, accepted as an alias


def population(resp: pd.DataFrame, name: str) -> pd.DataFrame:
    """The analysis population of the responder endpoint.

    - ``evaluable``: every randomised participant; the not evaluable have a missing
      ``responder`` and drop out of the proportions (the published analysis);
    - ``nri``: every randomised participant, not evaluable counted as non-responders;
    - ``treated``: participants who received the allocated procedure, analysed in their
      randomised arm (the not evaluable drop out as in ``evaluable``). This is not a
      per-protocol population (no protocol deviation is recorded in the data);
      ``per_protocol``, its former name, is accepted as a deprecated alias.

    Labels for headings are in :data:`POPULATION_LABELS`.

    Returns
    -------
    pandas.DataFrame
        A filtered or filled copy of ``resp`` (:func:`responders`).
    """
    name = DEPRECATED_POPULATIONS.get(name, name)
    if name == "evaluable":
        return resp.copy()
    if name == "nri":
        out = resp.copy()
        out["responder"] = out["responder"].fillna(False).astype("boolean")
        return out
    if name == "treated":
        return resp[resp["treated"].astype(bool)].copy()
    raise ValueError(f"population must be one of {POPULATIONS}, not {name!r}")


def subgroup_levels(adsl_df: pd.DataFrame) -> pd.DataFrame:
    """Pre-specified subgroup levels of each participant.

    Returns
    -------
    pandas.DataFrame
        Columns ``subject_id``, ``sex``, ``age_group`` (``< 40`` / ``>= 40``), ``grade_group``
        (modified Pfirrmann ``4-5`` / ``6-8``, or ``1-3``), ``level_group`` (``L5-S1``, ``L4-L5``,
        ``L1-L4``), ``vas_group`` (baseline VAS ``<= median`` / ``> median``, median of all
        randomised with a baseline VAS); a missing value gives a missing level (None).
    """
    d = adsl_df
    grade = d["pfirrmann_grade"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    vas = d["base_vas_pain"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    age = d["age"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    med = float(np.nanmedian(vas)) if np.isfinite(vas).any() else np.nan

    def cut(x, conditions, labels):
        return np.where(np.isnan(x), None, np.select(conditions, labels[:-1], default=labels[-1]).astype(object))

    with np.errstate(invalid="ignore"):
        return pd.DataFrame(
            {
                "subject_id": d["subject_id"].to_numpy(),
                "sex": d["sex"].astype(object).to_numpy(),
                "age_group": cut(age, [age < 40], ["< 40", ">= 40"]),
                "grade_group": cut(grade, [grade <= 3, grade <= 5], ["1-3", "4-5", "6-8"]),
                "level_group": np.where(d["disc_level"].isin(["L4-L5", "L5-S1"]), d["disc_level"].astype(object), "L1-L4"),
                "vas_group": cut(vas, [vas > med], [f"> {med:g} mm", f"<= {med:g} mm"]),
            }
        )

"""Table 1 and publication tables (built with tableone)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats as sps
from tableone import TableOne

from . import config

TABLE1_VARIABLES = {  # ADSL variable -> label
    "AGE": "Age, years",
    "SEX": "Sex",
    "BMI": "BMI, kg/m2",
    "SYMDUR": "Symptom duration, months",
    "DISCLVL": "Treated disc level",
    "PFIRRSCR": "Modified Pfirrmann grade",
    "BVAS": "Low back pain VAS, mm",
    "BODI": "ODI, %",
    "BPCS": "SF-36 PCS",
    "BMCS": "SF-36 MCS",
    "BT2": "Nucleus pulposus T2, ms",
}
CATEGORICAL = ("SEX", "DISCLVL", "PFIRRSCR")
SKEW_LIMIT = 1.0  # |sample skewness| above this: median [Q1, Q3] instead of mean (SD)


def skewed(adsl: pd.DataFrame, columns) -> list[str]:
    """Continuous columns whose pooled sample skewness exceeds :data:`SKEW_LIMIT` in absolute value
    (a constant column, or one with fewer than 3 values, has no skewness: not skewed)."""
    out = []
    for c in columns:
        x = pd.to_numeric(adsl[c], errors="coerce").astype(float).dropna()
        if len(x) > 2 and x.nunique() > 1 and abs(sps.skew(x, bias=False)) > SKEW_LIMIT:
            out.append(c)
    return out


def table1(adsl: pd.DataFrame, variables: dict | None = None, pvalues: bool = False, decimals: int = 1):
    """Baseline characteristics by arm and overall (CONSORT Table 1).

    Mean (SD) for roughly normal variables, median [Q1, Q3] for skewed ones
    (|skewness| > 1, decided on the pooled data), n (%) for categorical ones;
    standardised mean differences; missing counts; p-values only when asked
    (CONSORT advises against testing baseline differences in an RCT).

    Parameters
    ----------
    adsl : DataFrame
        Subject-level dataset (ADSL: ``ARM`` and the variables).
    variables : dict, optional
        Column -> label (default :data:`TABLE1_VARIABLES`).
    pvalues : bool
        Add tableone's p-values (default False).

    Returns
    -------
    tableone.TableOne
        ``.tableone`` is the table as a DataFrame; ``.to_csv`` / ``.to_html`` export it.
    """
    variables = dict(variables or TABLE1_VARIABLES)
    cols = list(variables)
    df = pd.DataFrame({"arm": adsl["ARM"].astype(object).to_numpy()})
    categorical = [c for c in cols if c in CATEGORICAL]
    for c in cols:
        s = adsl[c]
        if c in categorical:
            df[c] = s.astype(object).where(s.notna(), None).map(lambda v: None if v is None else str(v)).to_numpy()
        else:
            df[c] = pd.to_numeric(s, errors="coerce").astype(float).to_numpy()
    nonnormal = skewed(df, [c for c in cols if c not in categorical])
    # An SD of fewer than 2 values (an arm with one measured participant), the quartiles of an arm with
    # no measured value and the SMD of a constant variable are undefined: tableone shows them empty;
    # only those expected messages are silenced.
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Degrees of freedom <= 0 for slice", RuntimeWarning)
        warnings.filterwarnings("ignore", "All-NaN slice encountered", RuntimeWarning)
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
        return TableOne(
            df,
            columns=cols,
            categorical=categorical,
            nonnormal=nonnormal,
            groupby="arm",
            order={"arm": list(config.ARMS)},
            pval=pvalues,
            smd=True,
            missing=True,
            overall=True,
            rename=variables,
            decimals=decimals,
            label_suffix=True,
        )


def fmt_ci(estimate, low, high, digits: int = 1, percent: bool = False) -> str:
    """``"12.3 [8.1, 16.5]"`` (or with % when ``percent``); empty string when the estimate is missing."""
    import math

    if estimate is None or (isinstance(estimate, float) and math.isnan(estimate)):
        return ""
    k = 100 if percent else 1
    unit = "%" if percent else ""

    def num(x):
        return f"{round(x * k, digits) + 0.0:.{digits}f}"  # + 0.0: never print "-0.0"

    if low is None or (isinstance(low, float) and math.isnan(low)):
        return f"{num(estimate)}{unit}"
    return f"{num(estimate)}{unit} [{num(low)}, {num(high)}]"


def fmt_p(p) -> str:
    """p-value as journals print it: ``<0.001``, else 3 decimals below 0.01, 2 above."""
    import math

    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ""
    if p < 0.001:
        return "<0.001"
    return f"{p:.3f}" if p < 0.01 else f"{p:.2f}"


def wide_ci(
    df: pd.DataFrame, index: str, columns: str, estimate: str = "estimate", digits: int = 1, percent: bool = False
) -> pd.DataFrame:
    """Display table: one cell ``estimate [low, high]`` per (index, columns) pair.

    Returns
    -------
    pandas.DataFrame
        Index ``index``, one column per value of ``columns`` (in order of appearance).
    """
    cell = [fmt_ci(e, lo, hi, digits, percent) for e, lo, hi in zip(df[estimate], df["ci_low"], df["ci_high"])]
    d = df.assign(_cell=cell)
    order = list(dict.fromkeys(d[columns]))
    return d.pivot(index=index, columns=columns, values="_cell")[order].rename_axis(columns=None)


def suppress_small(df: pd.DataFrame, count_columns, min_cell: int, derived_columns=()) -> pd.DataFrame:
    """Display copy where counts from 1 to ``min_cell - 1`` read ``"<min_cell"`` (and the columns
    derived from them are blanked), for authors who must not publish small cells of real data.

    ``min_cell = 0`` (the default of the notebooks) returns the frame unchanged.

    Returns
    -------
    pandas.DataFrame
    """
    if not min_cell:
        return df.copy()
    out = df.copy().astype({c: object for c in [*count_columns, *derived_columns] if c in df.columns})
    for c in count_columns:
        small = pd.to_numeric(df[c], errors="coerce").between(1, min_cell - 1)
        out.loc[small, c] = f"<{min_cell}"
        for d in derived_columns:
            if d in out.columns:
                out.loc[small, d] = ""
    return out


def num_text(x, spec: str = ".1f", missing: str = "not estimable", scale: float = 1.0, suffix: str = "") -> str:
    """``x`` formatted for running text (``format(x * scale, spec) + suffix``), or ``missing``
    when it is NaN or None, so that a sentence stays true on data where a number cannot be
    estimated."""
    import math

    if x is None or (isinstance(x, float) and math.isnan(x)) or pd.isna(x):
        return missing
    return f"{float(x) * scale:{spec}}{suffix}"


def p_text(p) -> str:
    """``"p = 0.77"``, ``"p = 0.004"`` or ``"p < 0.001"`` for running text."""
    s = fmt_p(p)
    return "p not estimable" if not s else (f"p {s[0]} {s[1:]}" if s.startswith("<") else f"p = {s}")

"""Search the seed of the default synthetic cohort: the first seed from a start whose secondary
contrasts are all null (p >= 0.05 with a margin), as the paper reports.

Usage: PYTHONPATH=src python scripts/calibrate_synthetic.py [start] [count]
Prints, per seed tried, the smallest p among the secondary contrasts and whether it passes.
"""

from __future__ import annotations

import sys

import numpy as np
from scipy import stats as sps

from respine_nb import config, derive, mmrm, stats, synthetic

MARGIN = 0.10  # smallest p accepted, so that a small change of method does not cross 0.05


def yates_p(a: np.ndarray, b: np.ndarray) -> float:
    """Yates chi-square p of two boolean samples (1.0 when a margin is empty)."""
    t = np.array([[a.sum(), len(a) - a.sum()], [b.sum(), len(b) - b.sum()]])
    if (t.sum(axis=0) == 0).any() or (t.sum(axis=1) == 0).any():
        return 1.0
    return float(sps.chi2_contingency(t, correction=True)[1])


def secondary_ps(tables: dict) -> dict:
    """Smallest p per family of secondary contrasts of one cohort."""
    ad = derive.derive_all(tables)
    eff = ad["adeff"]
    out = {}
    for measure in config.MEASURES:
        d = mmrm.mmrm(eff, measure)
        out[f"mmrm.{measure}"] = float(d.loc[d["term"] == "difference", "p_value"].min())
    pairs = stats.paired_visit(ad["admri"], 12)
    out["t2.ancova"] = float(stats.ancova(pairs)["p_value"].iloc[0])
    ps = []
    for v in config.POST_BASELINE_VISITS:
        at = eff[(eff["visit_month"] == v) & (eff["measure"] == "vas_pain")]
        r = at[at["responder"].notna()]
        ps.append(
            yates_p(r.loc[r["arm"] == "BM-MSC", "responder"].astype(bool), r.loc[r["arm"] == "Sham", "responder"].astype(bool))
        )
        for m in config.MCID:
            mm = eff[(eff["visit_month"] == v) & (eff["measure"] == m) & eff["mcid"].notna()]
            ps.append(
                yates_p(mm.loc[mm["arm"] == "BM-MSC", "mcid"].astype(bool), mm.loc[mm["arm"] == "Sham", "mcid"].astype(bool))
            )
    out["binary.min"] = min(ps)
    return out


def main(argv: list) -> int:
    start = int(argv[1]) if len(argv) > 1 else config.DEFAULT_SEED
    count = int(argv[2]) if len(argv) > 2 else 50
    for seed in range(start, start + count):
        ps = secondary_ps(synthetic.generate(seed))
        worst = min(ps.values())
        print(seed, f"{worst:.3f}", "PASS" if worst >= MARGIN else "", {k: round(v, 3) for k, v in ps.items()}, flush=True)
        if worst >= MARGIN:
            return 0
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

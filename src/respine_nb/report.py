"""A static, shareable HTML report of one run: no server, no network, opens from file://.

``build(out=None)`` turns a run into a small site:

- ``index.html``: the trial in one paragraph, the headline results (from results.csv, as a
  paper prints them), the run's manifest (input checksums, parameters, versions, commit), and
  links to every notebook and figure;
- ``notebooks/<name>.html`` (with code) and ``notebooks/<name>-no-code.html`` (for co-authors
  who do not read code), rendered by nbconvert with every script removed (the outputs are static
  HTML and images; MathJax and require.js would otherwise be fetched from a CDN);
- ``figures/``: the run's PNG figures.
- ``tables/``: the run's publication tables as Word documents (Table 2 is shown on the index page,
  the others in their notebooks' pages).

The default run's report goes to ``reports/`` (git-ignored: it is rebuilt from committed files in
seconds, and committing ~10 MB of generated HTML would double the repository at every change);
a run with ``--out OUT`` gets ``OUT/report/``. Every file is written atomically.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import pandas as pd

from . import __version__, config, io, parameters, results, tables
from .provenance import data_manifest, git_commit, input_checksums, versions

REPORTS_DIR = config.ROOT / "reports"
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", flags=re.S | re.I)
_EXTERNAL_LINK = re.compile(r"<link\b[^>]*href=\"https?://[^\"]*\"[^>]*>", flags=re.I)

# Headline rows: (analysis_id, label, kind) where kind says how to print the estimate. Labels name
# the run's visit and population (``{visit_month}``, ``{population}``, ``{immunology_visit}``: see
# :func:`headline`), never a fixed one.
HEADLINE = (
    ("cohort.randomized", "Randomised", "count"),
    ("cohort.evaluable", "Evaluable for the primary endpoint at month {visit_month}", "count"),
    ("primary.responders", "Responders at month {visit_month} ({population})", "proportion"),
    ("primary.risk_difference", "Difference in responders (Newcombe CI; Yates chi-square)", "difference"),
    ("primary.fisher", "Odds ratio, conditional MLE (Fisher exact)", "ratio"),
    ("primary.nri.risk_difference", "Difference, non-responder imputation", "difference"),
    ("primary.mi.risk_difference", "Difference, multiple imputation", "difference"),
    ("secondary.mmrm.vas_pain", "VAS change at month {visit_month}, BM-MSC minus sham (MMRM, mm)", "mean"),
    ("secondary.mmrm.odi", "ODI change at month {visit_month}, BM-MSC minus sham (MMRM, points)", "mean"),
    ("mri.t2.change", "T2 change to month {visit_month} (ms)", "mean"),
    ("mri.t2.ancova", "T2 change, BM-MSC minus sham (ANCOVA, ms)", "mean"),
    ("ttr.km_median", "Median time to first response (months)", "mean"),
    ("ttr.cox_hr", "Hazard ratio of first response (Cox)", "ratio"),
    ("safety.sae", "Participants with a serious adverse event", "proportion"),
    ("safety.related_sae", "Participants with a related serious adverse event", "proportion"),
    ("immunology.anti_hla", "Anti-HLA positive at month {immunology_visit}", "proportion"),
)

TRIAL_SUMMARY = (
    "RESPINE (NCT03737461; Pers et al., Ann Rheum Dis 2024) randomised 114 adults with chronic low back "
    "pain from single-level degenerative disc disease to one intradiscal injection of 20 million "
    "allogeneic bone-marrow mesenchymal stromal cells (BM-MSC) or a sham procedure. The published primary "
    "endpoint was response one year after the injection (VAS improved by at least 20 % and 20 mm, or ODI by "
    "at least 20 % of baseline): 74 % vs 69 %, p = 0.77. This report re-runs the trial's analyses with the "
    "respine-notebooks collection."
)

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9rem; margin: 0.5rem 0; }
th, td { border-bottom: 1px solid #e4e4e4; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f4f6f8; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.banner { background: #fff4d6; border: 1px solid #e6c200; padding: 0.6rem 0.9rem; }
code { font-size: 0.85rem; word-break: break-all; }
.gallery img { max-width: 18rem; border: 1px solid #ddd; margin: 0.3rem; }
"""


def _fmt_row(row: pd.Series, kind: str) -> str:
    e, lo, hi = row["estimate"], row["ci_low"], row["ci_high"]
    if pd.isna(e):
        return "not estimable" if kind != "mean" else "not reached"
    if kind == "count":
        return f"{int(e)}"
    if kind == "proportion":
        return tables.fmt_ci(e, lo, hi, digits=0, percent=True)
    if kind == "difference":
        return tables.fmt_ci(e, lo, hi, digits=1, percent=True).replace("%", " points", 1)
    if kind == "ratio":
        return tables.fmt_ci(e, lo, hi, digits=2)
    return tables.fmt_ci(e, lo, hi, digits=1)


def check_headline(headline_rows=None) -> None:
    """Raise ValueError naming every analysis_id of the headline table (:data:`HEADLINE`) that the
    analysis registry does not list (:func:`results.check_registered`).

    Parameters
    ----------
    headline_rows : sequence of tuple, optional
        (analysis_id, label, kind) rows; default :data:`HEADLINE`.
    """
    ids = [aid for aid, _, _ in (HEADLINE if headline_rows is None else headline_rows)]
    results.check_registered(pd.DataFrame({"analysis_id": ids}))


def headline(rows: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
    """The headline results as a paper prints them.

    Parameters
    ----------
    rows : pandas.DataFrame
        The run's results.csv.
    params : dict, optional
        The run's parameters (its manifest's ``parameters``; defaults for those not given): the
        labels name its population and visit (a row's own ``visit_month`` when it has one), and
        the MMRM rows are those of its visit.

    Returns
    -------
    pandas.DataFrame
        Columns ``result``, ``group``, ``visit``, ``estimate [95 % CI]``, ``p``, ``n``; rows in
        :data:`HEADLINE` order (those present in ``rows``).
    """
    check_headline()
    settings = {**parameters.defaults(), **(params or {})}
    fill = {
        "visit_month": settings["visit_month"],
        "immunology_visit": settings["immunology_visit"],
        "population": parameters.POPULATION_SHORT[settings["population"]],
    }
    out = []
    for aid, label, kind in HEADLINE:
        sel = rows[rows["analysis_id"] == aid]
        if aid.startswith("secondary.mmrm"):
            sel = sel[sel["visit_month"] == settings["visit_month"]]
        for _, r in sel.iterrows():
            visit = fill["visit_month"] if pd.isna(r["visit_month"]) else int(r["visit_month"])  # the row knows best
            out.append(
                {
                    "result": label.format(**{**fill, "visit_month": visit}),
                    "group": r["group"],
                    "visit": "" if pd.isna(r["visit_month"]) else str(int(r["visit_month"])),
                    "estimate [95 % CI]": _fmt_row(r, kind),
                    "p": tables.fmt_p(r["p_value"]),
                    "n": "" if pd.isna(r["n"]) else str(int(r["n"])),
                }
            )
    return pd.DataFrame(out, columns=["result", "group", "visit", "estimate [95 % CI]", "p", "n"])


def _markdown_html(text: str) -> str:
    """The few Markdown marks of :func:`parameters.setting` (bold, code) as HTML, the rest escaped.

    Returns
    -------
    str
    """
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def notebook_html(path: Path, code: bool = True) -> str:
    """One executed notebook as a standalone HTML page without scripts or external resources."""
    from nbconvert import HTMLExporter

    nb = nbformat.read(path, as_version=4)
    exporter = HTMLExporter(template_name="lab")
    if not code:
        exporter.exclude_input = True
        exporter.exclude_input_prompt = True
        exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb)
    body = _EXTERNAL_LINK.sub("", _SCRIPT.sub("", body))
    body = body.replace("<head>", '<head><link rel="icon" href="data:,">', 1)  # no favicon request
    nav = (
        '<p style="font-family:sans-serif;margin:1rem 2rem"><a href="../index.html">&larr; RESPINE report</a>'
        f' &middot; <a href="{path.stem}{"-no-code" if code else ""}.html">'
        f"{'hide the code' if code else 'show the code'}</a></p>"
    )
    return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + nav, body, count=1)


def _run_paths(out) -> dict:
    if out is None:
        return {
            "notebooks": config.NOTEBOOKS_DIR,
            "derived": config.DERIVED_DIR,
            "figures": config.FIGURES_DIR,
            "manifest": None,
            "report": REPORTS_DIR,
            "data": config.SYNTHETIC_DIR,
        }
    root = Path(out).expanduser().resolve()
    return {
        "notebooks": root / "notebooks",
        "derived": root / "derived",
        "figures": root / "figures",
        "manifest": root / "manifest.json",
        "report": root / "report",
        "data": None,
    }


def _manifest(paths: dict) -> dict:
    if paths["manifest"] is not None and paths["manifest"].is_file():
        return json.loads(paths["manifest"].read_text(encoding="utf-8"))
    data = paths["data"]
    sums = input_checksums(data)
    return {
        "respine_nb": __version__,
        "git_commit": git_commit(),
        "data_dir": "data/raw/synthetic (default run)",
        "inputs_sha256": sums,
        "data_manifest": data_manifest(data, sums),
        "parameters": {},
        "versions": versions(),
    }


def _table_html(df: pd.DataFrame, numeric=()) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for _, r in df.iterrows():
        cells = "".join(f"<td{' class=num' if c in numeric else ''}>{html.escape(str(v))}</td>" for c, v in r.items())
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def index_html(rows: pd.DataFrame, manifest: dict, notebooks: list, figures: list, tables_: list = ()) -> str:
    """The report's index page (see module doc); ``tables_``: the run's Word tables copied under
    ``tables/``, linked below Table 2."""
    from .session import synthetic_banner

    data = manifest.get("data_manifest") or {}
    banner_text = synthetic_banner(data, bool(data.get("files_match")))
    banner = f'<p class="banner">{_markdown_html(banner_text)}</p>' if banner_text else ""
    params = manifest.get("parameters") or {}
    setting = parameters.setting(
        {**{k: v for k, v in parameters.defaults().items() if k in ("visit_month", *parameters.RULE, "population")}, **params}
    )
    links = "".join(
        f'<li><a href="notebooks/{p.stem}.html">{html.escape(_title(p))}</a> '
        f'(<a href="notebooks/{p.stem}-no-code.html">without code</a>)</li>'
        for p in notebooks
    )
    gallery = "".join(f'<a href="figures/{f.name}"><img src="figures/{f.name}" alt="{html.escape(f.stem)}"></a>' for f in figures)
    run = {**parameters.defaults(), **params}
    table2_html = results.table2(rows, run["visit_month"], run["immunology_visit"], run["min_cell"])._repr_html_()
    table_links = ", ".join(f'<a href="tables/{f.name}">{html.escape(f.name)}</a>' for f in tables_)
    sums = pd.DataFrame(sorted(manifest.get("inputs_sha256", {}).items()), columns=["input file", "sha256"])
    versions = manifest.get("versions", {})
    facts = pd.DataFrame(
        [
            ("respine_nb", manifest.get("respine_nb", "")),
            ("git commit", manifest.get("git_commit", "")),
            ("data", manifest.get("data_dir", "")),
            ("data generator", json.dumps(manifest.get("data_manifest", {}), sort_keys=True)),
            ("parameters", json.dumps(params, sort_keys=True) if params else "defaults"),
            ("run started", manifest.get("started", "")),
            ("run finished", manifest.get("finished", "")),
            *sorted(versions.items()),
        ],
        columns=["item", "value"],
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,"><title>RESPINE: re-run of the trial's analyses</title><style>{CSS}</style></head>
<body>
<h1>RESPINE: re-run of the trial's analyses</h1>
{banner}
<p>{html.escape(TRIAL_SUMMARY)}</p>
<p>{_markdown_html(setting)}</p>
<h2 id="results">Headline results</h2>
{_table_html(headline(rows, params), numeric=("estimate [95 % CI]", "p", "n"))}
<p>Proportions in %, differences in percentage points, 95 % confidence intervals in brackets. Every
number of the run, with its method, is in <a href="results.csv">results.csv</a>.</p>
<h2 id="table2">Table 2</h2>
{table2_html}
<p>The run's tables as Word documents: {table_links or "none in this run"}.</p>
<h2 id="notebooks">Notebooks</h2>
<ul>{links}</ul>
<h2 id="figures">Figures</h2>
<div class="gallery">{gallery}</div>
<h2 id="manifest">Run manifest</h2>
{_table_html(facts)}
{_table_html(sums)}
<p style="color:#666;font-size:0.8rem">Built {datetime.now(UTC).isoformat(timespec="seconds")} by respine-nb {__version__}.</p>
</body></html>
"""


def _title(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return f"{path.stem}: {line[2:].strip()}"
    return path.stem


def build(out=None) -> Path:
    """Build the report of the default run (``out=None``) or of the run under ``out``.

    Returns
    -------
    Path
        The report's index.html.

    Raises
    ------
    FileNotFoundError
        When the run has no executed notebooks or no results.csv.
    """
    paths = _run_paths(out)
    notebooks = sorted(paths["notebooks"].glob("*.ipynb"))
    results_csv = paths["derived"] / "results.csv"
    if not notebooks or not results_csv.is_file():
        raise FileNotFoundError(
            f"no executed run found (notebooks in {paths['notebooks']}, {results_csv}): run `respine-nb run` first"
        )
    report = paths["report"]
    report.mkdir(parents=True, exist_ok=True)
    for p in notebooks:
        for code in (True, False):
            name = f"{p.stem}.html" if code else f"{p.stem}-no-code.html"
            io.atomic_write_text(report / "notebooks" / name, notebook_html(p, code))
    figures = sorted(paths["figures"].glob("*.png"))
    fig_dir = report / "figures"
    if fig_dir.exists():
        shutil.rmtree(fig_dir)
    for f in figures:
        io.atomic_write_bytes(fig_dir / f.name, f.read_bytes())
    table_files = sorted(paths["figures"].glob("*.docx"))  # the HTML twins are shown in the notebooks' pages
    table_dir = report / "tables"
    if table_dir.exists():
        shutil.rmtree(table_dir)
    for f in table_files:
        io.atomic_write_bytes(table_dir / f.name, f.read_bytes())
    io.atomic_write_bytes(report / "results.csv", results_csv.read_bytes())
    rows = results.read(results_csv)
    return io.atomic_write_text(report / "index.html", index_html(rows, _manifest(paths), notebooks, figures, table_files))

"""The shape of ``respine_nb.stats`` (issue 11): a package by topic, every public name re-exported,
no private name imported across modules of ours, no import circle, no import inside a function
of stats, nothing kept in ``DataFrame.attrs``."""

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pandas as pd

import respine_nb
from respine_nb import derive, io, stats

SRC = Path(respine_nb.__file__).resolve().parent
OURS = sorted(p for p in SRC.rglob("*.py"))
STATS_MODULES = [m.name for m in pkgutil.iter_modules(stats.__path__)]


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path):
    """(imported module, imported names, node) of every ``from X import ...`` of ours in ``path``,
    relative imports resolved."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "respine_nb":
                yield target, [a.name for a in node.names], node
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "respine_nb":
                    yield a.name, [], node


def test_every_module_imports():
    for mod in STATS_MODULES:
        importlib.import_module(f"respine_nb.stats.{mod}")
    importlib.import_module("respine_nb.provenance")


def test_topics_and_all():
    assert set(STATS_MODULES) == {
        "cohort",
        "binary",
        "estimands",
        "missing",
        "reference_based",
        "sensitivity",
        "continuous",
        "mri",
        "survival",
        "safety",
    }
    seen = {}
    for mod in STATS_MODULES:
        m = importlib.import_module(f"respine_nb.stats.{mod}")
        public = {
            n
            for n, v in vars(m).items()
            if not n.startswith("_")
            and not inspect.ismodule(v)
            and getattr(v, "__module__", m.__name__) == m.__name__
            and (inspect.isfunction(v) or n.isupper())
        }
        assert set(m.__all__) == public, f"{mod}.__all__ differs from its public definitions"
        assert list(stats.EXPORTS[mod]) == list(m.__all__), f"stats.EXPORTS['{mod}'] differs from {mod}.__all__"
        for n in m.__all__:
            assert n not in seen, f"{n} defined in {seen.get(n)} and {mod}"
            seen[n] = mod
            assert getattr(stats, n) is getattr(m, n), f"stats.{n} is not re-exported"
    assert sorted(stats.__all__) == sorted(seen)


def test_modules_imported_when_first_used():
    """A notebook that draws no survival curve does not import lifelines (issue 15)."""
    import subprocess
    import sys

    code = (
        "import sys; from respine_nb import stats; stats.wilson_ci(1, 2); "
        "print(sorted(m for m in ('lifelines', 'pingouin', 'respine_nb.stats.survival', 'respine_nb.mmrm') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]" and not out.stderr
    assert "km_summary" in dir(stats) and stats.survival.km_summary is stats.km_summary


def test_no_private_name_imported_across_our_modules():
    bad = []
    for path in OURS:
        for target, names, node in _imports(path):
            if any(part.startswith("_") and part != "__init__" for part in target.split(".")[1:]):
                bad.append(f"{path.name}:{node.lineno} imports module {target}")
            bad += [f"{path.name}:{node.lineno} imports {target}.{n}" for n in names if n.startswith("_") and n != "__version__"]
    assert not bad, bad


def test_no_import_inside_functions_of_stats():
    for path in sorted((SRC / "stats").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = [n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))]
                assert not inner, f"{path.name}: {node.name} imports inside the function"


def _graph(top_level_only: bool) -> dict:
    graph = {}
    for path in OURS:
        name = _module_name(path)
        deps = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = set(map(id, tree.body))
        for target, names, node in _imports(path):
            if top_level_only and id(node) not in top:
                continue
            for n in names or [None]:  # "from . import x" names a module
                cand = f"{target}.{n}" if n else target
                deps.add(
                    cand
                    if (SRC.parent / (cand.replace(".", "/") + ".py")).exists()
                    or (SRC.parent / cand.replace(".", "/") / "__init__.py").exists()
                    else target
                )
        graph[name] = deps - {name}
    return graph


def _cycles(graph: dict, among=None) -> list:
    among = set(graph) if among is None else among
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if dep not in among or dep.startswith(node + "."):
                continue  # a package importing its own modules is not a circle
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for node in sorted(among):
        if node not in state:
            visit(node, [node])
    return cycles


def test_no_import_circle_in_stats():
    graph = _graph(top_level_only=False)
    stats_mods = {n for n in graph if n.startswith("respine_nb.stats")}
    assert not _cycles(graph, stats_mods)
    for name in stats_mods:  # stats imports config, endpoints, the MMRM (DESIGN.md section 4) and itself only
        assert all(
            d.startswith("respine_nb.stats")
            or d in ("respine_nb", "respine_nb.config", "respine_nb.endpoints", "respine_nb.mmrm")
            for d in graph[name]
        ), (name, graph[name])


def test_report_and_runner_import_provenance_not_each_other():
    graph = _graph(top_level_only=False)
    assert "respine_nb.runner" not in graph["respine_nb.report"]
    assert "respine_nb.report" not in graph["respine_nb.runner"]
    assert "respine_nb.provenance" in graph["respine_nb.report"] and "respine_nb.provenance" in graph["respine_nb.runner"]


def test_no_attrs_and_cox_contract(small_dataset_dir):
    raw = io.load_dataset(small_dataset_dir).tables
    ad = derive.derive_all(raw, 6)
    flow = stats.consort_flow(ad["adsl"], ad["adds"], visit_month=6)
    assert flow.attrs == {} and (flow["visit_month"] == 6).all()
    grades = derive.mri_by_visit(ad["admri"], 0)
    by_grade = stats.t2_by_grade(grades)
    assert by_grade.attrs == {} and list(by_grade.columns) == ["grade", "n", "mean", "sd", "ci_low", "ci_high"]
    rho = stats.t2_grade_correlation(grades)
    assert list(rho.columns) == ["group", "visit_month", "estimate", "p_value", "n", "method"] and len(rho) == 1
    tte = ad["adtte"]
    row = stats.cox(tte)
    assert isinstance(row, pd.DataFrame) and len(row) == 1 and row.attrs == {}
    fit, frame = stats.fit_cox(tte)
    assert len(frame) == row["n"].iloc[0]
    ph = stats.ph_test(fit, frame)
    assert {"covariate", "group", "statistic", "estimate", "p_value", "n", "method"} <= set(ph.columns)


def test_no_import_circle_in_the_package():
    graph = _graph(top_level_only=False)
    assert not _cycles(graph), _cycles(graph)


def test_stats_never_reads_raw_table_columns():
    """stats reads analysis datasets (ADaM names) or derive's views, never a raw table: no raw
    column name of the data contract appears as a string in stats (the wide view's own names
    excepted, read by mi_risk_difference and threshold_grid)."""
    raw_columns = {
        "subject_id",
        "treated",
        "discontinuation_month",
        "discontinuation_reason",
        "randomization_date",
        "vas_pain",
        "sf36_pcs",
        "sf36_mcs",
        "t2_np_ms",
        "pfirrmann_grade",
        "disc_height_mm",
        "anti_hla_class_i",
        "anti_hla_class_ii",
        "onset_day",
        "severity",
        "exclusion_reason",
        "screening_id",
    }
    found = []
    for path in sorted((SRC / "stats").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Subscript):  # a column read: frame["..."] or frame[["...", ...]]
                continue
            for c in ast.walk(node.slice):
                if isinstance(c, ast.Constant) and isinstance(c.value, str) and c.value in raw_columns:
                    found.append(f"{path.name}:{c.lineno} {c.value!r}")
    assert not found, found

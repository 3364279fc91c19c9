"""The notebooks' parameters, declared once: type, default, allowed values, one line of help.

Every name a notebook's ``parameters`` cell assigns is declared in :data:`SPEC` (a test checks
it, and that the notebook's default is the declared one). :func:`check` is the one gate: the
runner calls it on ``-p`` values before any data is read or kernel started, and
:func:`respine_nb.session.start` calls it on the values a notebook runs with, so a student in
JupyterLab gets the same message as the command line. :func:`setting` states in one sentence
which visit, responder rule and population an analysis used, built from the parameters (the
notebooks' setting paragraph and the report's labels use it, so no text claims a fixed visit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from . import config


@dataclass(frozen=True)
class Parameter:
    """One declared notebook parameter.

    Attributes
    ----------
    name : str
    kind : str
        ``"int"``, ``"float"``, ``"str"``, ``"bool"`` or ``"path"`` (a folder, or None).
    default : object
        The value of the default run (the notebooks' parameters cells hold the same).
    help : str
        One line for ``respine-nb run --help``.
    choices : tuple, optional
        The allowed values (then ``low``/``high`` are unused).
    low, high : float, optional
        Bounds of a number; ``low_open``/``high_open`` say whether the bound itself is excluded.
    """

    name: str
    kind: str
    default: object
    help: str
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def allowed(self) -> str:
        """What the parameter accepts, in words (e.g. ``a number in (0, 1]``).

        Returns
        -------
        str
        """
        if self.kind == "path":
            return "a folder path, or None"
        if self.kind == "bool":
            return "true or false"
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) if isinstance(c, str) else str(c) for c in self.choices)
        if self.kind == "str":
            return "text"
        noun = "an integer" if self.kind == "int" else "a number"
        if self.low is not None and self.high is not None:
            return f"{noun} in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {self.low:g}"
        return noun

    def check(self, value):
        """The value, checked (an int given for a float parameter becomes a float).

        Returns
        -------
        object

        Raises
        ------
        ValueError
            Naming the parameter, the value and what is allowed.
        """
        given = value

        def bad():
            hint = " (a fraction: 0.2 means 20 %)" if self.high == 1.0 and self.kind == "float" else ""
            return ValueError(f"parameter {self.name} = {given!r} is not allowed: expected {self.allowed()}{hint}")

        if self.kind == "path":
            if value is None or (isinstance(value, (str, Path)) and str(value).strip()):
                return value
            raise bad()
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            raise bad()
        if self.kind == "str":
            if not isinstance(value, str):
                raise bad()
        elif self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad()
        elif self.kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise bad()
            value = float(value)
        if self.choices is not None and value not in self.choices:
            raise bad()
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            raise bad()
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            raise bad()
        return value


_PROPORTION = dict(low=0.0, high=1.0, low_open=True)

SPEC: dict[str, Parameter] = {
    p.name: p
    for p in (
        Parameter("data_dir", "path", None, "dataset folder in the data contract (None: the committed synthetic cohort)"),
        Parameter("out_dir", "path", None, "output root: derived/ and figures/ go under it (None: see session.start)"),
        Parameter(
            "visit_month",
            "int",
            config.PRIMARY_VISIT,
            "the primary visit (responders, evaluability, MRI change)",
            choices=config.POST_BASELINE_VISITS,
        ),
        Parameter(
            "vas_abs_mm",
            "float",
            config.VAS_ABS_MM,
            "VAS criterion: improvement of at least this many mm (and vas_rel of baseline)",
            low=0.0,
            high=100.0,
            low_open=True,
        ),
        Parameter(
            "vas_rel", "float", config.VAS_REL, "VAS criterion: improvement of at least this fraction of baseline", **_PROPORTION
        ),
        Parameter(
            "odi_rel",
            "float",
            config.ODI_REL,
            "ODI criterion (relative rule): improvement of at least this fraction of baseline",
            **_PROPORTION,
        ),
        Parameter(
            "odi_rule",
            "str",
            config.ODI_RULES[0],
            f"ODI criterion: relative (odi_rel x baseline) or absolute (at least {config.ODI_ABS:g} points)",
            choices=config.ODI_RULES,
        ),
        Parameter(
            "population",
            "str",
            config.POPULATIONS[0],
            "headline population: evaluable, nri (not evaluable = non-responder) or treated",
            choices=config.POPULATIONS,
        ),
        Parameter(
            "ice_strategy",
            "str",
            config.ICE_STRATEGIES[0],
            "primary estimand, spine surgery or another spinal injection before the visit: treatment_policy "
            "(values as observed), composite (non-responder) or hypothetical (later values imputed)",
            choices=config.ICE_STRATEGIES,
        ),
        Parameter("n_imputations", "int", 50, "multiple imputation: number of imputed datasets", low=2),
        Parameter("mi_seed", "int", 2024, "multiple imputation: random seed", low=0),
        Parameter("spaghetti_per_arm", "int", 15, "participants drawn at random per arm for the trajectory plot", low=1),
        Parameter("spaghetti_seed", "int", 1, "seed of that draw", low=0),
        Parameter(
            "immunology_visit",
            "int",
            6,
            "visit of the between-arm comparison of anti-HLA positivity",
            choices=tuple(v for v in config.IMMUNOLOGY_VISITS if v > 0),
        ),
        Parameter("min_cell", "int", 0, 'counts from 1 to min_cell - 1 are shown as "<min_cell"; 0 shows all', low=0),
        Parameter("table1_pvalues", "bool", False, "p-values in Table 1 (CONSORT advises against)"),
        Parameter(
            "n_trials", "int", 10000, "07_design: simulated trials of the responder analysis per design and hypothesis", low=100
        ),
        Parameter(
            "n_trials_vas",
            "int",
            300,
            "07_design: simulated trials of the VAS ANCOVA per design and hypothesis (the costly part)",
            low=100,
        ),
        Parameter("n_trials_mmrm", "int", 0, "07_design: simulated trials for the full MMRM (fit one by one; 0: skipped)", low=0),
        Parameter("n_per_arm_grid", "str", "50,100,200,400,800,1600", "07_design: participants per arm, comma-separated"),
        Parameter("vas_effect_mm", "float", 10.0, "07_design: extra VAS improvement with BM-MSC at month 12 (mm)", low=0.0),
        Parameter(
            "dropout",
            "float",
            0.1,
            "07_design: probability of not being evaluable at month 12",
            low=0.0,
            high=1.0,
            high_open=True,
        ),
        Parameter(
            "dropout_mechanism",
            "str",
            "MAR",
            "07_design: dropout driven by the month-6 (MAR) or month-12 (MNAR) VAS",
            choices=("MAR", "MNAR"),
        ),
        Parameter(
            "scheduler_address", "str", "", "07_design: Dask scheduler address (empty: RESPINE_NB_SCHEDULER, else this machine)"
        ),
        Parameter("design_seed", "int", 2024, "07_design: master seed of the simulation", low=0),
    )
}

# Passed by the runner from --data / --out, never with -p.
PATHS = ("data_dir", "out_dir")
RULE = ("vas_abs_mm", "vas_rel", "odi_rel", "odi_rule")


def defaults() -> dict:
    """Every declared parameter at its default.

    Returns
    -------
    dict
    """
    return {name: p.default for name, p in SPEC.items()}


def check(values: dict) -> dict:
    """Check parameter values against :data:`SPEC`.

    Parameters
    ----------
    values : dict
        Name -> value (e.g. the ``-p`` pairs, or a notebook's parameters).

    Returns
    -------
    dict
        A new dict of the checked values (floats for float parameters).

    Raises
    ------
    ValueError
        For an unknown name (listing the valid names) or a value outside what is allowed
        (naming the parameter, the value and what is allowed).
    """
    unknown = sorted(set(values) - set(SPEC))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; valid names: {', '.join(SPEC)}")
    return {name: SPEC[name].check(value) for name, value in values.items()}


def changed(values: dict) -> dict:
    """The values that differ from their default (paths excluded).

    Returns
    -------
    dict
        Name -> value, in :data:`SPEC` order.
    """
    return {name: values[name] for name in SPEC if name in values and name not in PATHS and values[name] != SPEC[name].default}


def rule(values: dict) -> dict:
    """The responder-rule arguments among ``values``, defaults filled in (for derive and stats).

    Returns
    -------
    dict
        ``vas_abs_mm``, ``vas_rel``, ``odi_rel``, ``odi_rule``.
    """
    return {name: values.get(name, SPEC[name].default) for name in RULE}


def _pct(x: float) -> str:
    return f"{x * 100:.4g} %"


def rule_text(values: dict) -> str:
    """The responder rule in words, e.g. ``VAS improved by >= 20 mm and >= 20 % of baseline, or
    ODI improved by >= 20 % of baseline (relative rule)``.

    Returns
    -------
    str
    """
    r = rule(values)
    odi = f">= {_pct(r['odi_rel'])} of baseline" if r["odi_rule"] == "relative" else f">= {config.ODI_ABS:g} points"
    return (
        f"VAS improved by >= {r['vas_abs_mm']:g} mm and >= {_pct(r['vas_rel'])} of baseline, "
        f"or ODI improved by {odi} ({r['odi_rule']} rule)"
    )


POPULATION_TEXT = {
    "evaluable": "evaluable participants (the not evaluable are left out)",
    "nri": "all randomised, not evaluable counted as non-responders",
    "treated": "participants who received the allocated procedure, evaluable ones",
}
POPULATION_SHORT = {"evaluable": "among evaluable", "nri": "all randomised, NRI", "treated": "among treated evaluable"}
POPULATION_DENOMINATOR = {
    "evaluable": "evaluable participants",
    "nri": "randomised participants (NRI)",
    "treated": "treated evaluable participants",
}  # "% of ..." in figure labels


def setting(values: dict) -> str:
    """One paragraph stating the visit, responder rule and population among ``values``.

    Only the parameters present are described (a notebook passes those it declares).

    Returns
    -------
    str
        Markdown, e.g. ``**Setting.** Primary visit: month 6. Responder: ... Population: ...``.
    """
    parts = []
    if "visit_month" in values:
        parts.append(f"Primary visit: month {values['visit_month']}.")
    if any(name in values for name in RULE):
        parts.append(f"Responder: {rule_text(values)}.")
    if "population" in values:
        parts.append(f"Population: {POPULATION_TEXT[values['population']]}.")
    if "immunology_visit" in values:
        parts.append(f"Anti-HLA comparison between arms: month {values['immunology_visit']}.")
    if values.get("min_cell"):
        parts.append(f"Counts from 1 to {values['min_cell'] - 1} are suppressed.")
    changes = changed(values)
    if changes:
        parts.append("Changed from the defaults: " + ", ".join(f"`{k} = {v!r}`" for k, v in changes.items()) + ".")
    return "**Setting.** " + " ".join(parts) if parts else ""


def help_text() -> str:
    """The parameter list for ``respine-nb run --help``.

    Returns
    -------
    str
    """
    lines = ["notebook parameters (-p NAME VALUE; values read as JSON when they parse):"]
    for p in SPEC.values():
        if p.name in PATHS:
            continue
        default = (
            "none"
            if p.default is None
            else (str(p.default).lower() if p.kind == "bool" else f"{p.default:g}" if p.kind == "float" else str(p.default))
        )
        if p.kind == "str" and p.choices is None:
            default = repr(p.default)  # '' shows an empty default
        lines.append(f"  {p.name} (default {default}; {p.allowed()})")
        lines.append(f"      {p.help}")
    lines.append("  data_dir and out_dir are set by --data and --out.")
    return "\n".join(lines)


def lab_folder(values: dict, data_name: str | None = None) -> str:
    """Folder name under runs/ for a notebook explored with other parameters or data.

    Deterministic and readable: ``lab-`` then ``data-<folder>`` when the data are not the
    committed cohort, then each changed parameter as ``name-value``, joined by ``_``.

    Returns
    -------
    str
    """
    import hashlib
    import re

    parts = ([f"data-{data_name}"] if data_name else []) + [
        f"{k}-{v:g}" if isinstance(v, float) else f"{k}-{v}" for k, v in changed(values).items()
    ]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", "_".join(parts) or "defaults")
    if len(name) > 80:
        name = name[:70] + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"lab-{name}"


def generator_defaults() -> dict:
    """The settings of the committed synthetic cohort, as ``respine-nb generate`` records them in
    MANIFEST.json (``seed`` and ``parameters``).

    Returns
    -------
    dict
    """
    from .synthetic import RESPONDER_FRACTION

    return {
        "seed": config.DEFAULT_SEED,
        "parameters": {
            "n_msc": config.DEFAULT_N["BM-MSC"],
            "n_sham": config.DEFAULT_N["Sham"],
            "exact": True,
            "p_responder_msc": RESPONDER_FRACTION["BM-MSC"],
            "p_responder_sham": RESPONDER_FRACTION["Sham"],
        },
    }

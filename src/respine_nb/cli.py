"""respine-nb: generate, validate and analyse the RESPINE trial data with the notebooks.

Exit status: 0 success; 1 a notebook failed; 2 bad input (invalid data, bad
arguments). Bad data never produces a traceback, only the validation report.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

from . import __version__, config

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _generate(args) -> int:
    from . import synthetic
    from .parameters import generator_defaults

    out = Path(args.out) if args.out else config.SYNTHETIC_DIR
    settings = {
        "seed": args.seed,
        "parameters": {
            "n_msc": args.n_msc,
            "n_sham": args.n_sham,
            "exact": not args.free,
            "p_responder_msc": args.p_msc,
            "p_responder_sham": args.p_sham,
            "mnar": args.mnar,
        },
    }
    default = generator_defaults()
    given, usual = {"seed": args.seed, **settings["parameters"]}, {"seed": default["seed"], **default["parameters"]}
    usual.setdefault("mnar", False)
    changed = ", ".join(f"{k} = {v}" for k, v in given.items() if v != usual[k])
    if out.expanduser().resolve() == config.SYNTHETIC_DIR.resolve() and changed:
        print(
            f"error: {config.SYNTHETIC_DIR.relative_to(config.ROOT)} is the committed cohort; it is only written "
            f"with the default settings (these differ: {changed}). Give another folder, e.g. "
            f"--out data/raw/seed-{args.seed}",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    if out.exists() and not out.is_dir():
        print(f"error: --out {out} exists and is not a folder", file=sys.stderr)
        return EXIT_BAD_INPUT
    synthetic.write(
        out,
        args.seed,
        args.n_msc,
        args.n_sham,
        exact=not args.free,
        p_responder_msc=args.p_msc,
        p_responder_sham=args.p_sham,
        mnar=args.mnar,
        changed=changed,
    )
    n = args.n_msc + args.n_sham
    print(f"wrote a SYNTHETIC dataset of {n} participants (seed {args.seed}) to {out}")
    return EXIT_OK


def _validate(args) -> int:
    from . import io

    try:
        ds = io.load_dataset(args.dir)
    except FileNotFoundError as exc:
        print(f"INVALID: {exc}")
        return EXIT_BAD_INPUT
    except io.DataValidationError as exc:
        print(exc.report())
        return EXIT_BAD_INPUT
    print(ds.summary())
    return EXIT_OK


def _parse_params(pairs) -> dict:
    """``-p name value`` pairs -> dict, values read as JSON when they parse (numbers, true/false)."""
    params = {}
    for name, value in pairs or []:
        try:
            params[name] = json.loads(value)
        except json.JSONDecodeError:
            params[name] = value
    return params


def _run(args) -> int:
    factory = None
    if not (args.list_parameters or args.derive_only):
        from . import kernels

        if kernels.factory_enabled():  # first: it imports the analysis stack while this process starts
            factory = kernels.KernelFactory()
    try:
        from . import runner

        if args.list_parameters:
            try:
                print(runner.list_parameters(args.list_parameters))
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return EXIT_BAD_INPUT
            return EXIT_OK
        return runner.run(
            data=args.data,
            out=args.out,
            params=_parse_params(args.param),
            only=args.only,
            jobs=args.jobs,
            derive_only=args.derive_only,
            factory=factory,
        )
    finally:
        if factory is not None:
            factory.close()


def _report(args) -> int:
    from . import report

    try:
        index = report.build(args.out)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"report written: {index}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from .parameters import help_text

    responders = config.SYNTHETIC_RESPONDER_FRACTION  # from config, not synthetic: no pandas to build the parser

    p = argparse.ArgumentParser(
        prog="respine-nb",
        description=__doc__.splitlines()[0],
        epilog="Exit status: 0 success, 1 a notebook failed, 2 bad input (invalid data or arguments). "
        "'respine-nb COMMAND --help' shows each command's options.",
    )
    p.add_argument("--version", action="version", version=f"respine-nb {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    g = sub.add_parser(
        "generate",
        help="write a SYNTHETIC dataset in the data contract",
        description="Write a SYNTHETIC dataset (one CSV per table, MANIFEST.json, README.md) in the "
        "data contract. With every default, it rewrites the committed cohort.",
    )
    g.add_argument("--seed", type=int, default=config.DEFAULT_SEED, help=f"random seed (default: {config.DEFAULT_SEED})")
    g.add_argument(
        "--n-msc",
        type=int,
        default=config.DEFAULT_N["BM-MSC"],
        help=f"participants randomised to BM-MSC (default: {config.DEFAULT_N['BM-MSC']})",
    )
    g.add_argument(
        "--n-sham",
        type=int,
        default=config.DEFAULT_N["Sham"],
        help=f"participants randomised to sham (default: {config.DEFAULT_N['Sham']})",
    )
    g.add_argument(
        "--p-msc",
        type=float,
        default=responders["BM-MSC"],
        help=f"responder proportion, BM-MSC, among the evaluable at month 12 (default: {responders['BM-MSC']:g})",
    )
    g.add_argument(
        "--p-sham",
        type=float,
        default=responders["Sham"],
        help=f"responder proportion, sham (default: {responders['Sham']:g})",
    )
    g.add_argument(
        "--free",
        action="store_true",
        help="draw the month-12 responder counts at random instead of fixing them to the proportions (default: fixed)",
    )
    g.add_argument(
        "--mnar",
        action="store_true",
        help="dropout depends on the unobserved value at the visit missed (missing not at random) "
        "instead of the last observed one (default: missing at random)",
    )
    g.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="output folder (default: the committed cohort, data/raw/synthetic, which only the default settings may overwrite)",
    )
    g.set_defaults(func=_generate)

    v = sub.add_parser(
        "validate",
        help="check a dataset folder against the data contract",
        description="Check a dataset folder against the data contract: every problem in one report, "
        "or a summary of the valid dataset.",
    )
    v.add_argument("dir", metavar="DIR", help="the dataset folder (one file per table)")
    v.set_defaults(func=_validate)

    r = sub.add_parser(
        "run",
        help="validate, derive and execute the notebooks",
        epilog=help_text(),
        description=textwrap.fill(
            "Validate the data, derive the analysis datasets and execute every notebook "
            "(in parallel), showing each notebook's state; the last lines say where the "
            "notebooks, figures, results and report are. Without --data, --out and -p: the "
            "default run, in place in the repository.",
            79,
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument(
        "--data", default=None, metavar="DIR", help="dataset folder (default: the committed synthetic cohort, data/raw/synthetic)"
    )
    r.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="output folder for notebooks/, derived/, figures/ and manifest.json (default: the "
        "repository itself; required with --data or -p)",
    )
    r.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        help="a notebook parameter, repeatable (listed below; default: each parameter's default); checked before anything runs",
    )
    r.add_argument(
        "--only", nargs="+", default=None, metavar="NOTEBOOK", help="run only these notebooks, e.g. 01_cohort (default: all)"
    )
    r.add_argument(
        "--jobs", type=int, default=None, metavar="N", help="notebooks executed at once (default: the number of cores)"
    )
    r.add_argument(
        "--derive-only",
        action="store_true",
        help="stop after validating and writing the analysis datasets (default: run the notebooks)",
    )
    r.add_argument(
        "--list-parameters",
        default=None,
        metavar="NOTEBOOK",
        help="print the parameters of one notebook (type, default, allowed values, meaning) and run nothing "
        "(default: run the notebooks)",
    )
    r.set_defaults(func=_run)

    rep = sub.add_parser(
        "report",
        help="build the static HTML report of a run",
        description="Build the static HTML report of a run (no scripts, opens from disk).",
    )
    rep.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="the run's output folder, as given to 'respine-nb run --out' (default: the default run; "
        "the report goes to reports/)",
    )
    rep.set_defaults(func=_report)
    return p


# jsonschema, imported by nbformat and papermill, imports the optional rfc3987_syntax when it is
# installed (jupyter-events pulls it in for JupyterLab), and that import builds its Lark grammars,
# about 1 s (python-jsonschema/jsonschema#1428). Notebook validation never checks IRI formats: the
# command line goes without it.
_SKIPPED_IMPORTS = ("rfc3987_syntax",)


def main(argv=None) -> int:
    for name in _SKIPPED_IMPORTS:
        sys.modules.setdefault(name, None)  # import X now raises ImportError: jsonschema skips it
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted: nothing half-written was left behind", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

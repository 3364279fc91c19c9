"""``respine-nb``: generate, validate, run (and the benchmark helpers).

Exit status: 0 success; 1 a notebook failed; 2 bad input (invalid data, bad
arguments). Bad data never produces a traceback, only the validation report.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__, config

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _generate(args) -> int:
    from . import io, synthetic
    from .schema import CONTRACT_VERSION

    from .parameters import generator_defaults

    out = Path(args.out) if args.out else config.SYNTHETIC_DIR
    settings = {"seed": args.seed, "parameters": {"n_msc": args.n_msc, "n_sham": args.n_sham, "exact": not args.free,
                                                  "p_responder_msc": args.p_msc, "p_responder_sham": args.p_sham}}
    default = generator_defaults()
    if out.expanduser().resolve() == config.SYNTHETIC_DIR.resolve() and settings != default:
        given = {**{"seed": args.seed}, **settings["parameters"]}
        changed = ", ".join(f"{k} = {v}" for k, v in given.items()
                            if v != {**{"seed": default["seed"]}, **default["parameters"]}[k])
        print(f"error: {config.SYNTHETIC_DIR.relative_to(config.ROOT)} is the committed cohort; it is only written "
              f"with the default settings (these differ: {changed}). Give another folder, e.g. "
              f"--out data/raw/seed-{args.seed}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if out.exists() and not out.is_dir():
        print(f"error: --out {out} exists and is not a folder", file=sys.stderr)
        return EXIT_BAD_INPUT
    tables = synthetic.generate(args.seed, args.n_msc, args.n_sham, exact=not args.free,
                                p_responder_msc=args.p_msc, p_responder_sham=args.p_sham)
    sums = io.write_dataset(tables, out)
    manifest = {
        "synthetic": True,
        "notice": synthetic.SYNTHETIC_NOTICE,
        "generator": "respine_nb.synthetic",
        "generator_version": synthetic.GENERATOR_VERSION,
        "contract_version": CONTRACT_VERSION,
        **settings,
        "files": {name: {"rows": len(tables[name.removesuffix('.csv')]), "sha256": h}
                  for name, h in sorted(sums.items())},
    }
    io.atomic_write_text(out / "MANIFEST.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    io.atomic_write_text(out / "README.md", f"# Synthetic dataset\n\n{synthetic.SYNTHETIC_NOTICE}\n\n"
                         f"Seed {args.seed}; {args.n_msc} BM-MSC and {args.n_sham} sham participants. "
                         "See MANIFEST.json and ../README.md (the data contract).\n")
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
    from . import runner

    return runner.run(data=args.data, out=args.out, params=_parse_params(args.param), only=args.only,
                      jobs=args.jobs, derive_only=args.derive_only)


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
    from .synthetic import RESPONDER_FRACTION

    p = argparse.ArgumentParser(prog="respine-nb", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"respine-nb {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="write a SYNTHETIC dataset in the data contract")
    g.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    g.add_argument("--n-msc", type=int, default=config.DEFAULT_N["BM-MSC"])
    g.add_argument("--n-sham", type=int, default=config.DEFAULT_N["Sham"])
    g.add_argument("--p-msc", type=float, default=RESPONDER_FRACTION["BM-MSC"],
                   help="responder proportion, BM-MSC (evaluable, month 12)")
    g.add_argument("--p-sham", type=float, default=RESPONDER_FRACTION["Sham"], help="responder proportion, sham")
    g.add_argument("--free", action="store_true", help="draw the month-12 counts instead of fixing them")
    g.add_argument("--out", default=None, help="output folder (default: the committed cohort, data/raw/synthetic, "
                   "which only the default settings may overwrite)")
    g.set_defaults(func=_generate)

    v = sub.add_parser("validate", help="check a dataset folder against the data contract")
    v.add_argument("dir")
    v.set_defaults(func=_validate)

    r = sub.add_parser("run", help="validate, derive and execute the notebooks", epilog=help_text(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--data", default=None, help="dataset folder (default: the synthetic cohort)")
    r.add_argument("--out", default=None, help="output folder (required with --data or -p)")
    r.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="a notebook parameter (listed below); checked before anything runs")
    r.add_argument("--only", nargs="+", default=None, help="notebook names (e.g. 01_cohort)")
    r.add_argument("--jobs", type=int, default=None, help="notebooks at once (default: cores)")
    r.add_argument("--derive-only", action="store_true", help="stop after the analysis datasets")
    r.set_defaults(func=_run)

    rep = sub.add_parser("report", help="build the static HTML report of a run")
    rep.add_argument("--out", default=None, help="the run's output folder (default: the default run -> reports/)")
    rep.set_defaults(func=_report)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted: nothing half-written was left behind", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""respine_nb: the shared package of the RESPINE trial notebooks (NCT03737461).

Modules, one job each: config (paths, visits, thresholds), schema (the data
contract), io (read + validate a dataset, atomic writes), synthetic (the
calibrated SYNTHETIC cohort), derive (ADaM-lite datasets), endpoints (responder
and MCID rules), stats (one function per analysis), tables, plots, results,
runner (papermill orchestration) and cli.
"""
__version__ = "0.1.0"

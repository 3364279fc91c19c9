"""respine_nb: the shared package of the RESPINE trial notebooks (NCT03737461).

Modules, one job each:

- ``config``: paths, visit schedule, thresholds, published figures (one place);
- ``schema``: the data contract (pandera); ``io``: read + validate a dataset, atomic writes;
- ``synthetic``: the calibrated SYNTHETIC cohort; ``derive``: ADaM-lite analysis datasets;
- ``endpoints``: responder and MCID rules; ``stats``: one function per analysis -> tidy frame;
- ``mmrm``: the unstructured-covariance MMRM (REML, Satterthwaite), tested against R;
- ``tables``: Table 1 and display formatting; ``plots``: one theme, one function per figure kind;
- ``results``: tidy rows -> results.csv; ``session``: a notebook's start and finish;
- ``runner``: papermill orchestration; ``kernels``: the runner's kernels, forked from one process
  that imported the analysis stack once; ``report``: the static HTML report; ``cli``: ``respine-nb``.
"""

__version__ = "0.1.0"

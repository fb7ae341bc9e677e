"""Shared by the rule scripts: this job's logging, warnings and stdout go to its Snakemake log file.

`logs/` is what cluster users read, so everything a job reports is written there: `logging`
records (INFO and up), Python warnings (`warnings.warn`: sklearn's undefined-metric warnings,
the probes' ProbeWarning, ...; routed through `logging.captureWarnings` as logger
`py.warnings`, under Python's usual warning filters) and anything printed
to stdout. A failure's traceback is written to the log as well. stderr is left alone so that
tqdm progress bars still show on the terminal (or in the SLURM job's output).

Importing this module also puts this repository's ``src/`` first on ``sys.path``, so a job runs
the library of the checkout whose Snakefile built its DAG. The conda environments of the rules
(envs/*.yaml) hold only the pinned dependencies: Snakemake builds them under ``.snakemake/conda/``
(or ``--conda-prefix``), from where no relative path leads back to this repository.
"""

import contextlib
import logging
import sys
import traceback
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"  # Snakemake sets __file__ to the script's real path
if str(SRC) not in sys.path[:1]:
    sys.path.insert(0, str(SRC))


@contextlib.contextmanager
def logged(snakemake):
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    if not snakemake.log:
        logging.basicConfig(level=logging.INFO, format=fmt, force=True)
        yield
        return
    with open(snakemake.log[0], "w") as fh, contextlib.redirect_stdout(fh):
        logging.basicConfig(level=logging.INFO, stream=fh, format=fmt, force=True)
        logging.captureWarnings(True)
        try:
            yield
        except Exception:
            traceback.print_exc(file=fh)
            raise
        finally:
            logging.captureWarnings(False)

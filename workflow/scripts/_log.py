"""Shared by the rule scripts: this job's logging and stdout go to its Snakemake log file.

stderr is left alone so that tqdm progress bars still show on the terminal (or in the
SLURM job's output); a failure's traceback is written to the log as well.
"""
import contextlib
import logging
import traceback


@contextlib.contextmanager
def logged(snakemake):
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    if not snakemake.log:
        logging.basicConfig(level=logging.INFO, format=fmt, force=True)
        yield
        return
    with open(snakemake.log[0], "w") as fh, contextlib.redirect_stdout(fh):
        logging.basicConfig(level=logging.INFO, stream=fh, format=fmt, force=True)
        try:
            yield
        except Exception:
            traceback.print_exc(file=fh)
            raise

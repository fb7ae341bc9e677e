"""Shared by the rule scripts: send this job's stdout/stderr to its Snakemake log file."""
import contextlib
import sys


@contextlib.contextmanager
def logged(snakemake):
    if not snakemake.log:
        yield
        return
    with open(snakemake.log[0], "w") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        try:
            yield
        except Exception:
            import traceback

            traceback.print_exc(file=fh)
            raise

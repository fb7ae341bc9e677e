import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))  # noqa: E702
from _log import logged

from uqroute.figures.pages import write_pages

sm = snakemake  # noqa: F821
with logged(sm):
    write_pages(
        {k: (list(v) if not isinstance(v, str) else v) for k, v in sm.input.items()},
        dict(sm.output.items()),
        **dict(sm.params.items()),
    )

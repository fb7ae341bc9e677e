import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))  # noqa: E702
from _log import logged

from uqroute.figures import make_figure

sm = snakemake  # noqa: F821
with logged(sm):
    params = dict(sm.params.items())
    make_figure(params.pop("kind"), dict(sm.input.items()), sm.output[0], **params)

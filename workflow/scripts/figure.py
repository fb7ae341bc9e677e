import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))  # noqa: E702
from _log import logged

from uqroute.figures import make_figure

sm = snakemake  # noqa: F821
with logged(sm):
    params = dict(sm.params.items())
    # a rule drawing several figures gives each output its own kind and selectors (per_output)
    for output, extra in zip(sm.output, params.pop("per_output", [{}]), strict=True):
        figure = {**params, **extra}
        make_figure(figure.pop("kind"), dict(sm.input.items()), output, **figure)

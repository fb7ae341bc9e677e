import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))  # noqa: E702
from _log import logged

from uqroute.models import fetch_model

sm = snakemake  # noqa: F821
with logged(sm):
    fetch_model(sm.wildcards.model, sm.params.spec, sm.output[0], record=sm.input.record)

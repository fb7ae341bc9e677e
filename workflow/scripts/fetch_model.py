import sys; sys.path.insert(0, __import__("os").path.dirname(__file__))  # noqa: E702
from _log import logged

from uqroute.models import fetch_model

with logged(snakemake):  # noqa: F821
    fetch_model(snakemake.wildcards.model, snakemake.params.spec, snakemake.output[0])  # noqa: F821

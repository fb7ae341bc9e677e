import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))  # noqa: E702
from _log import logged

from uqroute.models import download_model

sm = snakemake  # noqa: F821
with logged(sm):
    download_model(sm.wildcards.model, sm.params.spec, sm.output[0], locked=sm.params.locked)

import sys; sys.path.insert(0, __import__("os").path.dirname(__file__))  # noqa: E702
from _log import logged

from uqroute.data import build_dataset
from uqroute.io import provenance

sm = snakemake  # noqa: F821
with logged(sm):
    build_dataset(sm.wildcards.dataset, sm.output[0], seed=sm.params.seed, locked=sm.params.locked,
                  provenance=provenance(dict(sm.params.items())), **sm.params.data)

import sys; sys.path.insert(0, __import__("os").path.dirname(__file__))  # noqa: E702
from _log import logged

from uqroute.data import build_dataset

with logged(snakemake):  # noqa: F821
    build_dataset(snakemake.wildcards.dataset, snakemake.output[0], seed=snakemake.params.seed, **snakemake.params.data)  # noqa: F821

import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))  # noqa: E702
from _log import logged

from uqroute.io import provenance
from uqroute.uq import run_uq

sm = snakemake  # noqa: F821
with logged(sm):
    run_uq(
        data_path=sm.input.data,
        generations_path=sm.input.generations,
        probes_path=sm.input.probes or None,  # absent when no probe method is selected
        out_path=sm.output[0],
        methods=sm.params.methods,
        provenance=provenance(dict(sm.params.items()), inputs=list(sm.input)),
    )

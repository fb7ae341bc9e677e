import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))  # noqa: E702
from _log import logged

from uqroute.io import provenance
from uqroute.routing import run_routing

sm = snakemake  # noqa: F821
with logged(sm):
    run_routing(
        uq_paths=list(sm.input.uq),
        correctness_paths=list(sm.input.correctness),
        data_paths=list(sm.input.data),
        proxy_probe_paths=list(sm.input.proxy_probes),
        slms=[sm.wildcards.slm],
        llms=sm.params.llms,
        datasets=sm.params.datasets,
        outputs=dict(sm.output.items()),
        params=sm.params.routing,
        seed=sm.params.seed,
        provenance=provenance(dict(sm.params.items()), inputs=list(sm.input)),
    )

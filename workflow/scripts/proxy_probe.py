import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))  # noqa: E702
from _log import logged

from uqroute.io import provenance
from uqroute.probes import run_proxy_probes

sm = snakemake  # noqa: F821
with logged(sm):
    run_proxy_probes(
        pairs=sm.params.pairs,
        datasets=sm.params.datasets,
        data_paths=list(sm.input.data),
        hidden_paths=list(sm.input.hidden),
        correctness_paths=list(sm.input.correctness),
        out_path=sm.output.scores,
        weights_path=sm.output.weights,
        cfg=sm.params.probe,
        seed=sm.params.seed,
        provenance=provenance(dict(sm.params.items()), inputs=list(sm.input.data) + list(sm.input.correctness)),
    )

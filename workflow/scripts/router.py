import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))  # noqa: E702
from _log import logged

from uqroute.io import provenance
from uqroute.router.build import run_router, run_router_holdout, run_router_probe

sm = snakemake  # noqa: F821
with logged(sm):
    if sm.rule == "router_holdout":
        run_router_holdout(
            uq_paths=list(sm.input.uq),
            correctness_paths=list(sm.input.correctness),
            data_paths=list(sm.input.data),
            slm=sm.wildcards.slm,
            datasets=sm.params.datasets,
            methods=sm.params.methods,
            out_path=sm.output[0],
            routing_params=sm.params.routing,
            k=sm.params.k,
            provenance=provenance(dict(sm.params.items()), inputs=list(sm.input)),
        )
    elif sm.rule == "router_probe":
        run_router_probe(
            datasets=sm.params.datasets,
            data_paths=list(sm.input.data),
            hidden_paths=list(sm.input.hidden),
            correctness_paths=list(sm.input.correctness),
            out_path=sm.output[0],
            probe_cfg=sm.params.probe,
            seed=sm.params.seed,
        )
    else:
        probe = sm.input.get("probe")  # one path (a str) for ood_probe, an empty list otherwise
        probe = probe if isinstance(probe, str) else (probe[0] if probe else None)
        run_router(
            holdout_path=sm.input.holdout,
            llm_correctness=dict(zip(sm.params.datasets, sm.input.llm_correctness)),
            out_path=sm.output[0],
            slm=sm.wildcards.slm,
            method=sm.wildcards.method,
            llm=sm.params.llm,
            router_cfg=sm.params.router,
            inference_cfg=sm.params.inference,
            seed=sm.params.seed,
            model_dir=sm.params.model_dir,
            weights=sm.params.weights,
            probe_path=probe,
            routing_seeds=sm.params.routing_seeds,
        )

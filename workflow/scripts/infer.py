import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))  # noqa: E702
from _log import logged

from uqroute.inference import run_inference
from uqroute.io import provenance

sm = snakemake  # noqa: F821
model = sm.wildcards.get("slm") or sm.wildcards.get("llm")
with logged(sm):
    run_inference(
        model=model,
        spec=sm.params.spec,
        model_dir=sm.input.model[0] if sm.input.model else None,
        data_path=sm.input.data,
        out_path=sm.output.generations,
        hidden_path=sm.output.get("hidden"),
        role=sm.params.role,
        cfg=sm.params.inference,
        seed=sm.params.seed,
        statistics=sm.params.get("statistics"),
        provenance=provenance(dict(sm.params.items()), inputs=[sm.input.data, *sm.input.model]),
    )

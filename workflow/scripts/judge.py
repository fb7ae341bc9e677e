import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))  # noqa: E702
from _log import logged

from uqroute.io import provenance
from uqroute.judge import run_judge

sm = snakemake  # noqa: F821
with logged(sm):
    run_judge(
        model=sm.wildcards.model,
        dataset=sm.wildcards.dataset,
        data_path=sm.input.data,
        generations_path=sm.input.generations,
        out_path=sm.output.correctness,
        agreement_path=sm.output.agreement,
        quality_path=sm.output.quality,
        judge_cfg=sm.params.judge,
        judge_spec=sm.params.judge_spec,
        judge_model_dir=sm.input.judge_model[0] if sm.input.judge_model else None,
        inference_cfg=sm.params.inference,
        provenance=provenance(dict(sm.params.items()), inputs=list(sm.input)),
    )

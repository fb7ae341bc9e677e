# Deployable routers (docs/router.md): for each (SLM, method) of router.slms × router.methods, a router
# file calibrated on a hold-out set pooled from every dataset of the run. `uqroute serve --router` serves it.


include: "router_common.smk"


rule router_holdout:
    input:
        uq=expand(ARTIFACTS["uq"].path, dataset=DATASETS, allow_missing=True),
        correctness=expand(ARTIFACTS["correctness"].path, model="{slm}", dataset=DATASETS),
        data=expand(ARTIFACTS["data"].path, dataset=DATASETS),
    output:
        ARTIFACTS["router_holdout"].path,
    params:
        datasets=DATASETS,
        methods=ROUTER["methods"],
        routing={k: ROUTING[k] for k in ("ratio_step", "bins", "k", "seeds")},
        k=ROUTER["k"],
    resources:
        mem_mb=lambda w, attempt: model_mem_mb(None, attempt),
        runtime=lambda w, attempt: model_runtime_min(None, attempt),
    log:
        "logs/router/{slm}/holdout.log",
    conda:
        "../../envs/uqroute.yaml"
    script:
        "../scripts/router.py"


rule router_probe:
    input:
        data=expand("results/data/{dataset}.parquet", dataset=DATASETS),
        hidden=expand("results/generations/{{slm}}/{dataset}.hidden.safetensors", dataset=DATASETS),
        correctness=expand("results/correctness/{{slm}}/{dataset}.parquet", dataset=DATASETS),
    output:
        "results/routers/{slm}/ood_probe.safetensors",
    params:
        datasets=DATASETS,
        probe=lambda w: cfg("probe"),
        seed=config["seed"],
    resources:
        mem_mb=lambda w, attempt: model_mem_mb(None, attempt),
        runtime=lambda w, attempt: model_runtime_min(None, attempt),
    log:
        "logs/router/{slm}/ood_probe.log",
    conda:
        "../../envs/uqroute.yaml"
    script:
        "../scripts/router.py"


rule router:
    input:
        holdout=ARTIFACTS["router_holdout"].path,
        llm_correctness=expand(ARTIFACTS["correctness"].path, model=[ROUTER_LLM] if ROUTER_LLM else [], dataset=DATASETS),
        probe=router_probe_input,
    output:
        ROUTER_FILE_PATH,
    wildcard_constraints:
        method="[a-z0-9_]+",
    params:
        datasets=DATASETS,
        llm=ROUTER_LLM,
        router={k: v for k, v in ROUTER.items() if k not in ("methods", "slms")},
        inference=lambda w: cfg("inference"),
        seed=config["seed"],
        routing_seeds=ROUTING["seeds"],
        model_dir=lambda w: f"resources/models/{w.slm}",
        weights=lambda w: weights_identity(fetch_spec(w.slm), name=w.slm),
    resources:
        mem_mb=lambda w, attempt: model_mem_mb(None, attempt),
        runtime=lambda w, attempt: model_runtime_min(None, attempt),
    log:
        "logs/router/{slm}/{method}.log",
    conda:
        "../../envs/uqroute.yaml"
    script:
        "../scripts/router.py"

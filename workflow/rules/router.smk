# Deployable routers (docs/router.md): for each (SLM, method) of router.slms × router.methods, a router
# file calibrated on a hold-out set pooled from every dataset of the run. `uqroute serve --router` serves it.


include: "router_common.smk"


rule router_holdout:
    input:
        uq=expand(path_of("uq"), dataset=DATASETS, allow_missing=True),
        correctness=expand(path_of("correctness", model="slm"), dataset=DATASETS, allow_missing=True),
        data=expand(path_of("data"), dataset=DATASETS),
    output:
        path_of("router_holdout"),
    params:
        datasets=DATASETS,
        methods=ROUTER["methods"],
        routing={k: ROUTING[k] for k in ("ratio_step", "bins", "k", "seeds")},
        k=ROUTER["k"],
        # recorded in the file's provenance: `uqroute calibrate` reads them when no --configfile is given
        inference=lambda w: cfg("inference"),
        seed=config["seed"],
    resources:
        mem_mb=lambda w, attempt: model_mem_mb(None, attempt),
        runtime=lambda w, attempt: model_runtime_min(None, attempt),
    log:
        "logs/router/{slm}/holdout.log",
    conda:
        "../../envs/eval.yaml"
    script:
        "../scripts/router.py"


rule router_probe:
    input:
        data=expand(path_of("data"), dataset=DATASETS),
        hidden=expand(path_of("hidden_states", model="slm"), dataset=DATASETS, allow_missing=True),
        correctness=expand(path_of("correctness", model="slm"), dataset=DATASETS, allow_missing=True),
    output:
        path_of("router_probe_weights").replace("{method}", "ood_probe"),
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
        "../../envs/torch.yaml"
    script:
        "../scripts/router.py"


rule router:
    input:
        holdout=path_of("router_holdout"),
        llm_correctness=expand(path_of("correctness"), model=[ROUTER_LLM] if ROUTER_LLM else [], dataset=DATASETS),
        probe=router_probe_input,
    output:
        path_of("router_file"),
    wildcard_constraints:
        method="[a-z0-9_]+",
    params:
        datasets=DATASETS,
        llm=ROUTER_LLM,
        router={k: v for k, v in ROUTER.items() if k not in ("methods", "slms")},
        inference=lambda w: cfg("inference"),
        seed=config["seed"],
        routing_seeds=ROUTING["seeds"],
        model_dir=lambda w: path_of("model_dir").format(model=w.slm),
        weights=lambda w: weights_identity(fetch_spec(w.slm), name=w.slm),
    resources:
        mem_mb=lambda w, attempt: model_mem_mb(None, attempt),
        runtime=lambda w, attempt: model_runtime_min(None, attempt),
    log:
        "logs/router/{slm}/{method}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/router.py"

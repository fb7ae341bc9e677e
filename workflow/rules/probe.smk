# In-domain probe (train split or cross-fitting) and leave-one-dataset-out probe.
# The OOD probe for {dataset} trains on every other dataset of the run, so it needs them all.
rule probe:
    input:
        data=expand(path_of("data"), dataset=DATASETS),
        hidden=expand(path_of("hidden_states"), model="{slm}", dataset=DATASETS),
        correctness=expand(path_of("correctness"), model="{slm}", dataset=DATASETS),
    output:
        scores=path_of("probes"),
        trained=path_of("trained_probe_weights"),
        ood=path_of("ood_probe_weights"),
    params:
        datasets=DATASETS,
        probe=lambda w: cfg("probe"),
        seed=config["seed"],
    resources:
        mem_mb=lambda w, attempt: model_mem_mb(None, attempt),
        runtime=lambda w, attempt: model_runtime_min(None, attempt),
    log:
        "logs/probe/{slm}/{dataset}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/probe.py"


# The leak-free OOD probe of a pair of datasets (paper §4.2, docs/routing.md "Leak-free proxy
# probes"): trained on every dataset of the run but {dataset} and {other}, it scores both. In the
# proxy study, source {dataset} of target {other} (and the reverse) is scored by it, so no proxy
# pool carries its target's labels. Rule `routing` asks only for the pairs its scenarios need.
rule proxy_probe:
    input:
        data=expand(path_of("data"), dataset=DATASETS),
        hidden=expand(path_of("hidden_states"), model="{slm}", dataset=DATASETS),
        correctness=expand(path_of("correctness"), model="{slm}", dataset=DATASETS),
    output:
        scores=path_of("proxy_probe"),
        weights=path_of("proxy_probe_weights"),
    wildcard_constraints:
        other="|".join(map(re.escape, DATASETS)),
    params:
        datasets=DATASETS,
        probe=lambda w: cfg("probe"),
        seed=config["seed"],
    resources:
        mem_mb=lambda w, attempt: model_mem_mb(None, attempt),
        runtime=lambda w, attempt: model_runtime_min(None, attempt),
    log:
        "logs/proxy_probe/{slm}/{dataset}+{other}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/proxy_probe.py"

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

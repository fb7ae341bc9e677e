# In-domain probe (train split or cross-fitting) and leave-one-dataset-out probe.
# The OOD probe for {dataset} trains on every other dataset of the run, so it needs them all.
rule probe:
    input:
        data=expand("results/data/{dataset}.parquet", dataset=DATASETS),
        hidden=expand("results/generations/{{slm}}/{dataset}.hidden.safetensors", dataset=DATASETS),
        correctness=expand("results/correctness/{{slm}}/{dataset}.parquet", dataset=DATASETS),
    output:
        scores="results/probes/{slm}/{dataset}.parquet",
        trained="results/probes/{slm}/{dataset}.trained_probe.safetensors",
        ood="results/probes/{slm}/{dataset}.ood_probe.safetensors",
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

rule uq:
    input:
        data="results/data/{dataset}.parquet",
        generations="results/generations/{slm}/{dataset}.parquet",
        probes=uq_probes,
    output:
        "results/uq/{slm}/{dataset}.parquet",
    params:
        methods=lambda w: cfg("uq")["methods"],
    resources:
        mem_mb=lambda w, attempt: model_mem_mb(None, attempt),
        runtime=lambda w, attempt: model_runtime_min(None, attempt),
    log:
        "logs/uq/{slm}/{dataset}.log",
    conda:
        "../../envs/eval.yaml"
    script:
        "../scripts/uq.py"

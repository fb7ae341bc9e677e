rule uq:
    input:
        data=path_of("data"),
        generations=path_of("generations", model="slm"),
        probes=uq_probes,
    output:
        path_of("uq"),
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

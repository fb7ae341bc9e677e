rule fetch_model:
    output:
        directory("resources/models/{model}"),
    params:
        spec=lambda w: fetch_spec(w.model),
    resources:
        mem_mb=lambda w, attempt: model_mem_mb(w.model, attempt),  # a GGUF source is dequantized in RAM
        runtime=lambda w, attempt: model_runtime_min(None, attempt),
    log:
        "logs/fetch_model/{model}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/fetch_model.py"

# Models: the network part (`download_model`, on the submitting node: internet and hub token are
# there) apart from the conversion (`fetch_model`, a cluster job: a GGUF is dequantized in RAM).
# Hub models go to the Hugging Face cache (HF_HOME) and fetch_model only links them.


localrules:
    download_model,


rule download_model:
    output:
        path_of("model_download"),
    params:
        spec=lambda w: fetch_spec(w.model),
        locked=lambda w: locked_model(w.model),
    log:
        "logs/download_model/{model}.log",
    conda:
        "../../envs/eval.yaml"
    script:
        "../scripts/download_model.py"


rule fetch_model:
    input:
        record=path_of("model_download"),
    output:
        directory(path_of("model_dir")),
    priority: FETCH_PRIORITY  # before any other ready job (common.smk)
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

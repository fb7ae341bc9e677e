# SLMs: greedy answer + log-probs + hidden states + samples + p(True) + verbalized confidence.
rule infer:
    input:
        data=path_of("data"),
        model=lambda w: model_dir(w.slm),
    output:
        generations=path_of("generations", model="slm"),
        hidden=path_of("hidden_states", model="slm"),
    priority: lambda w: inference_priority(w.slm, w.dataset, "slm")
    params:
        role="slm",
        spec=lambda w: MODELS[w.slm],
        inference=lambda w: cfg("inference"),
        statistics=lambda w: slm_statistics(),
        seed=config["seed"],
    resources:
        gpu=lambda w: model_gpus(w.slm),
        gpu_model=lambda w: model_gpu_model(w.slm),
        gpu_mem_mb=lambda w: model_gpu_mem_mb(w.slm),
        mem_mb=lambda w, attempt: model_mem_mb(w.slm, attempt),
        runtime=lambda w, attempt: model_runtime_min(w.slm, attempt),
    log:
        "logs/infer/{slm}/{dataset}.log",
    conda:
        lambda w: model_env(w.slm)  # envs/torch.yaml, or envs/vllm.yaml for a model on the vLLM engine
    script:
        "../scripts/infer.py"


# LLMs: the greedy answer (and log-probs where available) is all routing needs.
rule infer_llm:
    input:
        data=path_of("data"),
        model=lambda w: model_dir(w.llm),
    output:
        generations=path_of("generations", model="llm"),
    priority: lambda w: inference_priority(w.llm, w.dataset, "llm")  # longest first (common.smk)
    params:
        role="llm",
        spec=lambda w: MODELS[w.llm],
        inference=lambda w: cfg("inference"),
        seed=config["seed"],
    resources:
        gpu=lambda w: model_gpus(w.llm),
        gpu_model=lambda w: model_gpu_model(w.llm),
        gpu_mem_mb=lambda w: model_gpu_mem_mb(w.llm),
        mem_mb=lambda w, attempt: model_mem_mb(w.llm, attempt),
        runtime=lambda w, attempt: model_runtime_min(w.llm, attempt),
    log:
        "logs/infer/{llm}/{dataset}.log",
    conda:
        lambda w: model_env(w.llm)  # envs/torch.yaml, or envs/vllm.yaml for a model on the vLLM engine
    script:
        "../scripts/infer.py"


ruleorder: infer > infer_llm

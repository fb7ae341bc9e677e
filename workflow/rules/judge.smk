rule judge:
    input:
        data=path_of("data"),
        generations=path_of("generations"),
        judge_model=lambda w: judge_model_dir(),
    output:
        correctness=path_of("correctness"),
        agreement=path_of("agreement"),
        quality=path_of("quality"),
    params:
        judge=lambda w: cfg("judge"),
        judge_spec=lambda w: MODELS[judge_model_name()] if judge_model_name() else None,
        inference=lambda w: cfg("inference"),
    resources:
        gpu=lambda w: model_gpus(judge_model_name()),
        gpu_model=lambda w: model_gpu_model(judge_model_name()),
        gpu_mem_mb=lambda w: model_gpu_mem_mb(judge_model_name()),
        mem_mb=lambda w, attempt: model_mem_mb(judge_model_name(), attempt),
        runtime=lambda w, attempt: model_runtime_min(judge_model_name(), attempt),
    log:
        "logs/judge/{model}/{dataset}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/judge.py"

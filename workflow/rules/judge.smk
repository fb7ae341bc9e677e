def judge_model_dir(wildcards):
    model = cfg("judge").get("model")
    return model_dir(model) if model else []


rule judge:
    input:
        data="results/data/{dataset}.parquet",
        generations="results/generations/{model}/{dataset}.parquet",
        judge_model=judge_model_dir,
    output:
        correctness="results/correctness/{model}/{dataset}.parquet",
        agreement="results/correctness/{model}/{dataset}.agreement.parquet",
    params:
        judge=lambda w: cfg("judge"),
        judge_spec=lambda w: MODELS[cfg("judge")["model"]] if cfg("judge").get("model") else None,
        inference=lambda w: cfg("inference"),
    log:
        "logs/judge/{model}/{dataset}.log",
    conda:
        "../../envs/uqroute.yaml"
    script:
        "../scripts/judge.py"

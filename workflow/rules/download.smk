rule download:
    input:
        download_sources,
    output:
        "results/data/{dataset}.parquet",
    params:
        data=lambda w: cfg("data"),
        seed=config["seed"],
    log:
        "logs/download/{dataset}.log",
    conda:
        "../../envs/eval.yaml"
    script:
        "../scripts/download.py"

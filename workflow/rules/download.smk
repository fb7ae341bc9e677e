# Datasets (rule `download`) and the revisions lock of a run (rule `revisions_lock`).
# Both run on the submitting node (localrules): on a cluster that is where the internet and the
# hub token are, and both take seconds (docs/slurm.md, "Downloads").


localrules:
    download,
    revisions_lock,


rule download:
    input:
        download_sources,
    output:
        "results/data/{dataset}.parquet",
    params:
        data=lambda w: cfg("data"),
        seed=config["seed"],
        locked=lambda w: locked_dataset(w.dataset),
    log:
        "logs/download/{dataset}.log",
    conda:
        "../../envs/eval.yaml"
    script:
        "../scripts/download.py"


# Every model and dataset revision the run resolved (uqroute.revisions); the config key
# `revisions_lock` makes a later run use exactly these.
rule revisions_lock:
    input:
        data=expand("results/data/{dataset}.parquet", dataset=DATASETS),
        models=expand("resources/downloads/{model}.json", model=local_models()),
    output:
        "results/revisions.lock.yaml",
    params:
        datasets=DATASETS,
        models=local_models(),
    log:
        "logs/revisions_lock.log",
    conda:
        "../../envs/eval.yaml"
    script:
        "../scripts/revisions_lock.py"

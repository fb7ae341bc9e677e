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
        path_of("data"),
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
        data=expand(path_of("data"), dataset=DATASETS),
        models=expand(path_of("model_download"), model=local_models()),
    output:
        path_of("revisions_lock"),
    params:
        datasets=DATASETS,
        models=local_models(),
    log:
        "logs/revisions_lock.log",
    conda:
        "../../envs/eval.yaml"
    script:
        "../scripts/revisions_lock.py"

rule fetch_model:
    output:
        directory("resources/models/{model}"),
    params:
        spec=lambda w: MODELS[w.model],
    log:
        "logs/fetch_model/{model}.log",
    conda:
        "../../envs/uqroute.yaml"
    script:
        "../scripts/fetch_model.py"

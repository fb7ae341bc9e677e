# In-domain probe (train split or cross-fitting) and leave-one-dataset-out probe.
# The OOD probe for {dataset} trains on every other dataset of the run, so it needs them all.
rule probe:
    input:
        data=expand(path_of("data"), dataset=DATASETS),
        hidden=expand(path_of("hidden_states"), model="{slm}", dataset=DATASETS),
        correctness=expand(path_of("correctness"), model="{slm}", dataset=DATASETS),
    output:
        scores=path_of("probes"),
        trained=path_of("trained_probe_weights"),
        ood=path_of("ood_probe_weights"),
    params:
        datasets=DATASETS,
        probe=lambda w: cfg("probe"),
        seed=config["seed"],
    resources:
        mem_mb=lambda w, attempt: model_mem_mb(None, attempt),
        runtime=lambda w, attempt: model_runtime_min(None, attempt),
    log:
        "logs/probe/{slm}/{dataset}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/probe.py"


# The leak-free OOD probes of pairs of datasets (paper §4.2, docs/routing.md "Leak-free proxy
# probes"): the probe of a pair is trained on every dataset of the run but the two, and scores both.
# In the proxy study, source S of target T (and the reverse) is scored by it, so no proxy pool
# carries its target's labels. One job per SLM and dataset trains the pairs that dataset owns
# (uqroute.routing.proxy_probe_owner; 7 of the paper's 105 pairs each), among the pairs rule
# `routing` needs (routing_common.smk: proxy_probe_owned), each pair with its own seed.
rule proxy_probe:
    input:
        data=expand(path_of("data"), dataset=DATASETS),
        hidden=expand(path_of("hidden_states"), model="{slm}", dataset=DATASETS),
        correctness=expand(path_of("correctness"), model="{slm}", dataset=DATASETS),
    output:
        scores=path_of("proxy_probe"),
        weights=path_of("proxy_probe_weights"),
    params:
        datasets=DATASETS,
        pairs=lambda w: proxy_probe_owned(w.dataset),
        probe=lambda w: cfg("probe"),
        seed=config["seed"],
    resources:
        mem_mb=lambda w, attempt: model_mem_mb(None, attempt),
        # one probe costs about a leave-one-dataset-out probe of rule `probe`: the job trains one per pair
        runtime=lambda w, attempt: model_runtime_min(None, attempt) * len(proxy_probe_owned(w.dataset)),
    log:
        "logs/proxy_probe/{slm}/{dataset}.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/proxy_probe.py"

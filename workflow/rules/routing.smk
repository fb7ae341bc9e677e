# Routing evaluation (paper §3–4, App. E, G): alignment, routing curves, proxy routing data,
# Tables 4/5, and the figures, all registered in the Snakemake report.
ROUTING_SETTINGS = ["partial_in_domain", "out_of_domain"]
ROUTING_TABLES = {
    "auc": "results/routing/auc.parquet",
    "curves": "results/routing/curves.parquet",
    "proxy": "results/routing/proxy.parquet",
    "summary": "results/routing/summary.parquet",
    "relative_accuracy": "results/routing/relative_accuracy.parquet",
    "proxy_curves": "results/routing/proxy_curves.parquet",
}
FIG = "results/routing/figures"


def routing_methods():
    """UQ methods in config order (used to order figure legends)."""
    return list(cfg("uq").get("methods", []))


def proxy_methods():
    m = cfg("routing").get("proxy_methods", "all")
    return "all" if m == "all" else list(m)


rule routing:
    input:
        uq=expand("results/uq/{slm}/{dataset}.parquet", slm=SLMS, dataset=DATASETS),
        correctness=expand("results/correctness/{model}/{dataset}.parquet", model=SLMS + LLMS, dataset=DATASETS),
        data=expand("results/data/{dataset}.parquet", dataset=DATASETS),
    output:
        **ROUTING_TABLES,
        table4_csv=report("results/routing/tables/table4.csv", caption="../report/table4.rst", category="Routing", subcategory="Tables", labels={"table": "Table 4", "format": "CSV"}),
        table4_md=report("results/routing/tables/table4.md", caption="../report/table4.rst", category="Routing", subcategory="Tables", labels={"table": "Table 4", "format": "markdown"}),
        table5_csv=report("results/routing/tables/table5.csv", caption="../report/table5.rst", category="Routing", subcategory="Tables", labels={"table": "Table 5", "format": "CSV"}),
        table5_md=report("results/routing/tables/table5.md", caption="../report/table5.rst", category="Routing", subcategory="Tables", labels={"table": "Table 5", "format": "markdown"}),
    params:
        slms=SLMS,
        llms=LLMS,
        datasets=DATASETS,
        routing=lambda w: cfg("routing"),
        seed=config.get("seed", 0),
    resources:
        mem_mb=lambda w, attempt: model_mem_mb(None, attempt),
        runtime=lambda w, attempt: model_runtime_min(None, attempt),
    log:
        "logs/routing/routing.log",
    conda:
        "../../envs/uqroute.yaml"
    script:
        "../scripts/routing.py"


# Figures are seconds of CPU each: on a cluster they run on the submitting node instead of
# becoming hundreds of tiny SLURM jobs.
localrules:
    figure_auc_heatmap,
    figure_routing_curves,
    figure_relative_accuracy,
    figure_confidence,
    figure_proxy_curves,
    figure_rms_vs_k,


rule figure_auc_heatmap:
    input:
        auc=ROUTING_TABLES["auc"],
    output:
        report(FIG + "/auc_heatmap/{dataset}.png", caption="../report/auc_heatmap.rst", category="Routing", subcategory="Alignment (ROC-AUC)", labels={"dataset": "{dataset}"}),
    params:
        dataset=lambda w: w.dataset,
        slms=SLMS,
        methods=routing_methods(),
    log:
        "logs/routing/figures/auc_heatmap/{dataset}.log",
    conda:
        "../../envs/uqroute.yaml"
    script:
        "../scripts/figure_auc_heatmap.py"


rule figure_routing_curves:
    input:
        curves=ROUTING_TABLES["curves"],
    output:
        report(FIG + "/routing_curves/{llm}/{dataset}.png", caption="../report/routing_curves.rst", category="Routing", subcategory="Routing curves", labels={"LLM": "{llm}", "dataset": "{dataset}"}),
    params:
        llm=lambda w: w.llm,
        dataset=lambda w: w.dataset,
        slms=SLMS,
        methods=routing_methods(),
    log:
        "logs/routing/figures/routing_curves/{llm}/{dataset}.log",
    conda:
        "../../envs/uqroute.yaml"
    script:
        "../scripts/figure_routing_curves.py"


rule figure_relative_accuracy:
    input:
        relative_accuracy=ROUTING_TABLES["relative_accuracy"],
    output:
        report(FIG + "/relative_accuracy/{llm}/{dataset}.png", caption="../report/relative_accuracy.rst", category="Routing", subcategory="Relative accuracy", labels={"LLM": "{llm}", "dataset": "{dataset}"}),
    params:
        llm=lambda w: w.llm,
        dataset=lambda w: w.dataset,
        slms=SLMS,
        methods=routing_methods(),
    log:
        "logs/routing/figures/relative_accuracy/{llm}/{dataset}.log",
    conda:
        "../../envs/uqroute.yaml"
    script:
        "../scripts/figure_relative_accuracy.py"


rule figure_confidence:
    input:
        uq=expand("results/uq/{{slm}}/{dataset}.parquet", dataset=DATASETS),
    output:
        report(FIG + "/confidence/{slm}.png", caption="../report/confidence.rst", category="Routing", subcategory="Confidence distributions", labels={"SLM": "{slm}"}),
    params:
        slm=lambda w: w.slm,
        datasets=DATASETS,
        methods=proxy_methods(),
        bins=lambda w: cfg("routing").get("bins", 30),
    log:
        "logs/routing/figures/confidence/{slm}.log",
    conda:
        "../../envs/uqroute.yaml"
    script:
        "../scripts/figure_confidence.py"


rule figure_proxy_curves:
    input:
        proxy_curves=ROUTING_TABLES["proxy_curves"],
    output:
        report(FIG + "/proxy_curves/{llm}/{setting}/{dataset}.png", caption="../report/proxy_curves.rst", category="Routing", subcategory="Proxy routing data", labels={"LLM": "{llm}", "setting": "{setting}", "target": "{dataset}"}),
    wildcard_constraints:
        setting="|".join(ROUTING_SETTINGS),
    params:
        llm=lambda w: w.llm,
        target=lambda w: w.dataset,
        setting=lambda w: w.setting,
        slms=SLMS,
        methods=routing_methods(),
    log:
        "logs/routing/figures/proxy_curves/{llm}/{setting}/{dataset}.log",
    conda:
        "../../envs/uqroute.yaml"
    script:
        "../scripts/figure_proxy_curves.py"


rule figure_rms_vs_k:
    input:
        proxy=ROUTING_TABLES["proxy"],
    output:
        report(FIG + "/rms_vs_k/{llm}.png", caption="../report/rms_vs_k.rst", category="Routing", subcategory="Proxy routing data", labels={"LLM": "{llm}", "figure": "RMS vs k"}),
    params:
        llm=lambda w: w.llm,
        slms=SLMS,
    log:
        "logs/routing/figures/rms_vs_k/{llm}.log",
    conda:
        "../../envs/uqroute.yaml"
    script:
        "../scripts/figure_rms_vs_k.py"


def routing_targets():
    """Every routing table and figure (called by common.smk's all_targets())."""
    targets = list(ROUTING_TABLES.values())
    targets += [f"results/routing/tables/table{i}.{ext}" for i in (4, 5) for ext in ("csv", "md")]
    targets += expand(FIG + "/auc_heatmap/{dataset}.png", dataset=DATASETS)
    targets += expand(FIG + "/routing_curves/{llm}/{dataset}.png", llm=LLMS, dataset=DATASETS)
    targets += expand(FIG + "/relative_accuracy/{llm}/{dataset}.png", llm=LLMS, dataset=DATASETS)
    targets += expand(FIG + "/confidence/{slm}.png", slm=SLMS)
    targets += expand(FIG + "/proxy_curves/{llm}/{setting}/{dataset}.png", llm=LLMS, setting=ROUTING_SETTINGS, dataset=DATASETS)
    targets += expand(FIG + "/rms_vs_k/{llm}.png", llm=LLMS)
    return targets

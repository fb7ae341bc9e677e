# Routing evaluation (paper §3–4, App. E, G): one `routing` job per SLM (parallel on a cluster),
# then Tables 4/5 and the status page (`routing_tables`) and the figures, all registered in the
# Snakemake report. A failed SLM leaves every other SLM's tables and figures in place
# (--keep-going); `routing.assemble: available` then assembles the others and names it.


include: "routing_common.smk"


rule routing:
    input:
        uq=expand(ARTIFACTS["uq"].path, dataset=DATASETS, allow_missing=True),
        correctness=routing_correctness,
        data=expand(ARTIFACTS["data"].path, dataset=DATASETS),
        proxy_probes=routing_proxy_probes,
    output:
        **ROUTING_OUTPUTS,
    params:
        llms=LLMS,
        datasets=DATASETS,
        routing=ROUTING_EVAL,
        seed=config.get("seed", 0),
    resources:
        mem_mb=lambda w, attempt: model_mem_mb(None, attempt),
        runtime=lambda w, attempt: model_runtime_min(None, attempt),
    log:
        "logs/routing/{slm}.log",
    conda:
        "../../envs/eval.yaml"
    script:
        "../scripts/routing.py"


# Tables, the status page and figures are seconds of CPU each: on a cluster they run on the
# submitting node instead of becoming hundreds of tiny SLURM jobs.
localrules:
    routing_tables,
    figure_auc_heatmap,
    figure_confidence,
    figures_slm_llm,
    report_pages,


rule routing_tables:
    input:
        proxy=expand(ARTIFACTS["proxy"].path, slm=ROUTED_SLMS),
        warnings=expand(ARTIFACTS["routing_warnings"].path, slm=ROUTED_SLMS),
    output:
        table4_csv=report(TABLE_FILES["table4_csv"], caption="../report/table4.rst", category="Routing", subcategory="Tables", labels={"table": "Table 4", "format": "CSV (paper layout)"}),
        table4_full_csv=report(TABLE_FILES["table4_full_csv"], caption="../report/table4.rst", category="Routing", subcategory="Tables", labels={"table": "Table 4", "format": "CSV (full grid)"}),
        table4_md=report(TABLE_FILES["table4_md"], caption="../report/table4.rst", category="Routing", subcategory="Tables", labels={"table": "Table 4", "format": "markdown"}),
        table5_csv=report(TABLE_FILES["table5_csv"], caption="../report/table5.rst", category="Routing", subcategory="Tables", labels={"table": "Table 5", "format": "CSV (paper layout)"}),
        table5_full_csv=report(TABLE_FILES["table5_full_csv"], caption="../report/table5.rst", category="Routing", subcategory="Tables", labels={"table": "Table 5", "format": "CSV (full grid)"}),
        table5_md=report(TABLE_FILES["table5_md"], caption="../report/table5.rst", category="Routing", subcategory="Tables", labels={"table": "Table 5", "format": "markdown"}),
        status=report(TABLE_FILES["status"], caption="../report/status.rst", category="Routing", subcategory="Status", labels={"table": "status", "format": "markdown"}),
    params:
        slms=SLMS,
        assembled=ROUTED_SLMS,
        llms=LLMS,
        datasets=DATASETS,
        methods=routing_methods(),
        routing=ROUTING,
    log:
        "logs/routing/tables.log",
    conda:
        "../../envs/eval.yaml"
    script:
        "../scripts/routing_tables.py"


rule figure_auc_heatmap:
    input:
        auc=ARTIFACTS["auc"].path,
    output:
        report(FIGURES["auc_heatmap"].path, caption="../report/auc_heatmap.rst", category="Routing", subcategory="Alignment (ROC-AUC)", labels={"SLM": "{slm}"}),
    params:
        kind="auc_heatmap",
        slm=lambda w: w.slm,
        datasets=DATASETS,
        methods=routing_methods(),
    log:
        "logs/routing/figures/auc_heatmap/{slm}.log",
    conda:
        "../../envs/eval.yaml"
    script:
        "../scripts/figure.py"


rule figure_confidence:
    input:
        uq=expand(ARTIFACTS["uq"].path, dataset=DATASETS, allow_missing=True),
        correctness=expand(ARTIFACTS["correctness"].path, model="{slm}", dataset=DATASETS),
        data=expand(ARTIFACTS["data"].path, dataset=DATASETS),
    output:
        report(FIGURES["confidence"].path, caption="../report/confidence.rst", category="Routing", subcategory="Confidence distributions", labels={"SLM": "{slm}"}),
    params:
        kind="confidence",
        slm=lambda w: w.slm,
        datasets=DATASETS,
        methods=proxy_methods(),
        bins=ROUTING["bins"],
    log:
        "logs/routing/figures/confidence/{slm}.log",
    conda:
        "../../envs/eval.yaml"
    script:
        "../scripts/figure.py"


# The figures of one SLM routed to one LLM (routing_common.smk: SLM_LLM_FIGURES): routing curves,
# relative accuracy, RMS vs k and the proxy curves of every setting, each its own report item with
# its caption and labels, drawn by one job (one job per figure made 384 of the paper preset's jobs,
# for seconds of drawing each).
rule figures_slm_llm:
    input:
        curves=ARTIFACTS["curves"].path,
        auc=ARTIFACTS["auc"].path,
        relative_accuracy=ARTIFACTS["relative_accuracy"].path,
        proxy=ARTIFACTS["proxy"].path,
        proxy_curves=ARTIFACTS["proxy_curves"].path,
    output:
        *[report(path, category="Routing", **item) for path, item, _ in SLM_LLM_FIGURES],
    params:
        slm=lambda w: w.slm,
        llm=lambda w: w.llm,
        # each output's figure kind and selectors, in output order
        per_output=[params for _, _, params in SLM_LLM_FIGURES],
    log:
        "logs/routing/figures/{slm}/{llm}.log",
    conda:
        "../../envs/eval.yaml"
    script:
        "../scripts/figure.py"


# The report's pages (uqroute.figures.pages): the run's tables as HTML, which Snakemake's report shows
# inline (CSV and markdown are downloads only), and the quality warnings.
rule report_pages:
    input:
        data=expand(ARTIFACTS["data"].path, dataset=DATASETS),
        uq=expand(ARTIFACTS["uq"].path, slm=ROUTED_SLMS, dataset=DATASETS),
        generations=expand(ARTIFACTS["generations"].path, model=ROUTED_SLMS + LLMS, dataset=DATASETS),
        correctness=expand(ARTIFACTS["correctness"].path, model=ROUTED_SLMS + LLMS, dataset=DATASETS),
        quality=expand(ARTIFACTS["quality"].path, model=ROUTED_SLMS + LLMS, dataset=DATASETS),
        auc=expand(ARTIFACTS["auc"].path, slm=ROUTED_SLMS),
        routers=lambda w: router_targets(),
        **{k: TABLE_FILES[k] for k in ("table4_csv", "table4_full_csv", "table5_csv", "table5_full_csv", "status")},
    output:
        overview=report_page("overview", "overview", "1. The run"),
        accuracy=report_page("accuracy", "accuracy", "2. Accuracy"),
        alignment=report_page("alignment", "alignment", "3. Alignment (AUC, PRR, AURAC)"),
        table4=report_page("table4", "table4", "4. Tables 4-5"),
        table5=report_page("table5", "table5", "4. Tables 4-5"),
        quality=report_page("quality", "quality", "5. Quality"),
        routers=report_page("routers", "routers", "6. Routers"),
        status=report_page("status", "status", "7. Routing status"),
        queries=report_page("queries", "queries", "8. Every query"),
    params:
        slms=ROUTED_SLMS,
        llms=LLMS,
        datasets=DATASETS,
        methods=routing_methods(),
        warn_share=cfg("judge")["quality_warn_fraction"],
    log:
        "logs/report/pages.log",
    conda:
        "../../envs/eval.yaml"
    script:
        "../scripts/report_pages.py"

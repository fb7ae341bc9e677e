# uqroute: uncertainty-based routing from small to large language models.
# This file only sets the version, the config and its schema, the report, and the stages.
import os
import sys

from snakemake.utils import min_version, validate

# The library of this checkout, first on the path (the rule scripts do the same, workflow/scripts/_log.py),
# so the DAG and the jobs use the same code whichever uqroute is installed.
sys.path.insert(0, os.path.join(workflow.basedir, "src"))

from uqroute import preflight, settings

min_version("9.17")  # a function as `priority` (workflow/rules/infer.smk)


# config/config.yaml (the offline demo) is the config only when no --configfile is given:
# `snakemake --configfile my.yaml` runs my.yaml alone (plus the schema's defaults), so no demo
# setting (its 16-row eval_limit, its models) leaks into another config. --config key=value
# still overrides single keys of whichever config is used.
if not workflow.overwrite_configfiles:
    settings.load_yaml("config/config.yaml")  # a YAML error names the file and line

    configfile: "config/config.yaml"


# The library's validation first: one line naming the file and key (Snakemake's own message prints the
# schema). Then Snakemake's, which fills in the schema's defaults, then the checks only the library
# can make (names of methods, datasets and models, model roles, layers, directories), every problem
# at once under the config file's name (uqroute.preflight: each stage's config_problems).
CONFIG_FILES = ", ".join(map(str, workflow.overwrite_configfiles)) or "config/config.yaml"
settings.validate(config, where=CONFIG_FILES)
validate(config, schema="config/schema.yaml")
if workflow.is_main_process:  # job processes run with the config the main process checked
    preflight.check(config, where=CONFIG_FILES)


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/infer.smk"
include: "workflow/rules/judge.smk"
include: "workflow/rules/probe.smk"
include: "workflow/rules/uq.smk"
include: "workflow/rules/routing.smk"
include: "workflow/rules/router.smk"


# The end-of-run summary: accuracy per model, the best-aligned methods and the quality warnings
# (uqroute.figures.pages.run_summary; the same warnings are on the report's overview page).
onsuccess:
    from uqroute.figures.pages import run_summary

    try:
        print(run_summary("results", slms=SLMS, llms=LLMS, datasets=DATASETS))
    except Exception as err:  # the run itself succeeded; say why there is no summary
        print(f"uqroute run summary: not available ({type(err).__name__}: {err})")


rule all:
    input:
        all_targets(),
    default_target: True

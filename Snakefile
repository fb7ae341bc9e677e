# uqroute: uncertainty-based routing from small to large language models.
# This file only sets the version, the config and its schema, the report, and the stages.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, schema="config/schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/infer.smk"
include: "workflow/rules/judge.smk"
include: "workflow/rules/probe.smk"
include: "workflow/rules/uq.smk"
include: "workflow/rules/routing.smk"


rule all:
    input:
        all_targets(),
    default_target: True

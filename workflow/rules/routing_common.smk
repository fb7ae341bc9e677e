# Routing helpers (included by routing.smk): paths come from the registries in the library
# (uqroute.schema.ARTIFACTS for tables, uqroute.figures.FIGURES for figures,
# uqroute.routing.tables.TABLE_FILES for Tables 4/5 and the status page).

from uqroute.figures import FIGURES
from uqroute.figures.pages import PAGES
from uqroute.routing import LEAK_FREE_METHODS, OUT_OF_DOMAIN, PARTIAL_IN_DOMAIN, TABLES, available_slms, proxy_probe_jobs, proxy_probe_pairs, resolve, scenarios
from uqroute.routing.tables import TABLE_FILES
from uqroute.schema import ARTIFACTS

ROUTING = resolve(cfg("routing"))
# what the per-SLM jobs depend on: everything but `assemble` (switching it reruns only the assembly)
ROUTING_EVAL = {k: v for k, v in ROUTING.items() if k != "assemble"}
# the per-SLM artifacts written by the `routing` job: output key -> path pattern with {slm}
ROUTING_OUTPUTS = {key: ARTIFACTS[name].path for key, name in TABLES.items()}
# dataset -> domain for the generic out-of-domain setting (routing.out_of_domain; None when off)
ROUTING_DOMAINS = {d: get_spec(d).domain for d in DATASETS} if ROUTING["out_of_domain"] else None
ROUTING_SCENARIOS = scenarios(DATASETS, ROUTING["shifts"], ROUTING_DOMAINS)
ROUTING_SETTINGS = [PARTIAL_IN_DOMAIN] + ([OUT_OF_DOMAIN] if ROUTING["out_of_domain"] else []) + list(ROUTING["shifts"])


def setting_targets(setting):
    """The target datasets of one proxy setting (figure panels): every dataset for the partially
    in-domain and generic out-of-domain settings, a shift's targets otherwise."""
    return ROUTING["shifts"][setting]["targets"] if setting in ROUTING["shifts"] else DATASETS


def routing_outputs(slm):
    """The per-SLM routing artifacts of `slm`."""
    return [path.format(slm=slm) for path in ROUTING_OUTPUTS.values()]


def routed_slms():
    """SLMs assembled into Tables 4/5, heatmaps and the report: all (routing.assemble: all), or
    those whose per-SLM routing artifacts exist when the workflow is read (available)."""
    if ROUTING["assemble"] == "all":
        return list(SLMS)
    found = available_slms(SLMS, routing_outputs)
    if not found:
        raise ValueError("config key routing.assemble: 'available' assembles the SLMs whose routing results exist, and none has any yet; "
                         "run with routing.assemble: all first (add --keep-going so that one failed SLM does not stop the others)")
    return found


ROUTED_SLMS = routed_slms()


def routing_methods():
    """UQ methods in config order (orders figure legends; a method without scores is named)."""
    return list(cfg("uq").get("methods", []))


def proxy_methods():
    """The proxy methods (routing.proxy_methods; `all` = every UQ method)."""
    m = ROUTING["proxy_methods"]
    return routing_methods() if m == "all" else list(m)


def proxy_probe_jobs_needed():
    """{owner dataset: its pairs} of the leak-free OOD probes the proxy pools need (one proxy_probe
    job per SLM and owner), or {} when no proxy method needs them (uqroute.routing.LEAK_FREE_METHODS)."""
    if not any(m in LEAK_FREE_METHODS for m in proxy_methods()):
        return {}
    return proxy_probe_jobs(proxy_probe_pairs(ROUTING_SCENARIOS, DATASETS), DATASETS)


PROXY_PROBE_JOBS = proxy_probe_jobs_needed()


def proxy_probe_owned(dataset):
    """The pairs whose probes the proxy_probe job of `dataset` trains (a file no job writes is named)."""
    if dataset not in PROXY_PROBE_JOBS:
        raise ValueError(f"{ARTIFACTS['proxy_probe'].path}: dataset {dataset!r} owns no proxy-probe pair this config needs "
                         f"(owners: {list(PROXY_PROBE_JOBS)})")
    return [list(p) for p in PROXY_PROBE_JOBS[dataset]]


def routing_proxy_probes(wildcards):
    """The leak-free OOD-probe files of one SLM's proxy pools, written by the proxy_probe jobs (one per
    owner dataset, holding the pairs it owns), when a proxy method needs them."""
    return [ARTIFACTS["proxy_probe"].path.format(slm=wildcards.slm, dataset=d) for d in PROXY_PROBE_JOBS]


def routing_correctness(wildcards):
    """Correctness files one SLM's routing job reads: the SLM's own and every LLM's."""
    return expand(ARTIFACTS["correctness"].path, model=[wildcards.slm] + LLMS, dataset=DATASETS)


def slm_llm_figures():
    """The figures of one SLM routed to one LLM, drawn by one figures_slm_llm job, in output order:
    (path pattern with {slm} and {llm}, its report item's caption, subcategory and labels, its
    uqroute.figures.make_figure kind and selectors)."""
    pair = {"SLM": "{slm}", "LLM": "{llm}"}
    figures = [
        (FIGURES["routing_curves"].path, dict(caption="../report/routing_curves.rst", subcategory="Routing curves", labels=pair),
         dict(kind="routing_curves", datasets=DATASETS, methods=routing_methods())),
        (FIGURES["relative_accuracy"].path, dict(caption="../report/relative_accuracy.rst", subcategory="Relative accuracy", labels=pair),
         dict(kind="relative_accuracy", datasets=DATASETS, methods=routing_methods())),
    ]
    for s in ROUTING_SETTINGS:
        figures.append((FIGURES["proxy_curves"].path.replace("{setting}", s),
                        dict(caption="../report/proxy_curves.rst", subcategory="Proxy routing data", labels={**pair, "setting": s, "figure": "proxy vs oracle"}),
                        dict(kind="proxy_curves", methods=proxy_methods(), setting=s, targets=setting_targets(s))))
    figures.append((FIGURES["rms_vs_k"].path, dict(caption="../report/rms_vs_k.rst", subcategory="Proxy routing data", labels={**pair, "setting": "every scenario", "figure": "RMS vs k"}),
                    dict(kind="rms_vs_k", methods=proxy_methods(), settings=ROUTING_SETTINGS)))
    return figures


SLM_LLM_FIGURES = slm_llm_figures()


def report_page(name, caption, subcategory):
    """A page of uqroute.figures.pages as a report item under "Results" (its caption: workflow/report/pages/)."""
    return report(PAGES[name], caption=f"../report/pages/{caption}.rst", category="Results", subcategory=subcategory, labels={"page": caption})


def routing_targets():
    """Every routing table and figure (called by common.smk's all_targets())."""
    targets = [path for slm in ROUTED_SLMS for path in routing_outputs(slm)]
    targets += list(TABLE_FILES.values())
    targets += expand(FIGURES["auc_heatmap"].path, slm=ROUTED_SLMS)
    targets += expand(FIGURES["routing_curves"].path, slm=ROUTED_SLMS, llm=LLMS)
    targets += expand(FIGURES["relative_accuracy"].path, slm=ROUTED_SLMS, llm=LLMS)
    targets += expand(FIGURES["confidence"].path, slm=ROUTED_SLMS)
    targets += expand(FIGURES["proxy_curves"].path, slm=ROUTED_SLMS, llm=LLMS, setting=ROUTING_SETTINGS)
    targets += expand(FIGURES["rms_vs_k"].path, slm=ROUTED_SLMS, llm=LLMS)
    targets += list(PAGES.values())
    return targets

# Router helpers (included by router.smk): the (SLM, method) pairs and the inputs of rule `router`.
from uqroute.router import router_pairs
from uqroute.router.config import resolve as resolve_router

ROUTER = resolve_router(cfg("router"))
ROUTER_PAIRS = router_pairs(ROUTER, SLMS)
ROUTER_LLM = ROUTER["llm"] or (LLMS[0] if LLMS else None)


def router_targets():
    """Every router file (called by common.smk's all_targets())."""
    return [path_of("router_file").format(slm=s, method=m) for s, m in ROUTER_PAIRS]


def router_probe_input(wildcards):
    """The OOD probe a probe router serves (rule router_probe); nothing for other methods."""
    return path_of("router_probe_weights").format(**wildcards) if wildcards.method == "ood_probe" else []

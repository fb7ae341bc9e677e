"""uqroute.routing.check_config: every routing mistake the config can reveal, named by key, before any job runs."""

import copy
from pathlib import Path

import pytest
import yaml

from uqroute.routing import DEFAULTS, PARTIAL_IN_DOMAIN, RoutingConfigError, check_config, scenarios

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ["gsm8k", "aqua", "svamp", "boolq", "truthfulqa", "hellaswag"]
METHODS = ["perplexity", "ood_probe", "verbal_1s"]
SLMS, LLMS = ["s1", "s2"], ["l1", "l2"]
GOOD = {
    "shifts": {"math_to_commonsense": {"sources": ["gsm8k", "aqua"], "targets": ["truthfulqa"]}},
    "table4": {"target": "hellaswag", "llm": "l2", "method": "perplexity", "slms": ["s2"]},
    "table5": {"shifts": ["math_to_commonsense"], "llm": "l1", "method": "ood_probe", "slms": ["s1", "s2"]},
}


def check(cfg):
    return check_config(cfg, DATASETS, METHODS, slms=SLMS, llms=LLMS)


def test_a_good_config_is_returned_with_defaults():
    p = check(GOOD)
    assert p["k"] == DEFAULTS["k"] and p["shifts"] == GOOD["shifts"] and p["table4"]["target"] == "hellaswag"
    assert check(None)["table5"] == DEFAULTS["table5"]


@pytest.mark.parametrize(
    "patch, key",
    [
        ({"nonsense": 1}, r"routing: unknown key\(s\) \['nonsense'\]"),
        ({"ratio_step": 0.03}, r"routing.ratio_step: .*1/ratio_step must be an integer"),
        ({"ratio_step": 0}, r"routing.ratio_step"),
        ({"k": 0}, r"routing.k: sampling ratios must lie in \(0, 1\]"),
        ({"k_sweep": [0.1, 1.5]}, r"routing.k_sweep"),
        ({"bins": 0}, r"routing.bins"),
        ({"seeds": []}, r"routing.seeds"),
        (
            {"proxy_methods": ["perplexity", "no_such_method"]},
            r"routing.proxy_methods: unknown UQ method\(s\) \['no_such_method'\]",
        ),
        ({"proxy_methods": ["ptrue"]}, r"routing.proxy_methods: \['ptrue'\] are not in uq.methods"),
        ({"shifts": {"Bad Name": {"sources": ["gsm8k"], "targets": ["boolq"]}}}, r"routing.shifts.Bad Name"),
        (
            {"shifts": {PARTIAL_IN_DOMAIN: {"sources": ["gsm8k"], "targets": ["boolq"]}}},
            r"routing.shifts.partial_in_domain: .*reserved|is the name",
        ),
        (
            {"shifts": {"x": {"sources": ["gsm8k", "coqa"], "targets": ["boolq"]}}},
            r"routing.shifts.x.sources: \['coqa'\] are not datasets of this run",
        ),
        ({"shifts": {"x": {"sources": ["gsm8k"], "targets": ["mmlu"]}}}, r"routing.shifts.x.targets: \['mmlu'\]"),
        (
            {"shifts": {"x": {"sources": ["gsm8k", "boolq"], "targets": ["boolq"]}}},
            r"routing.shifts.x.targets: \['boolq'\] are also sources",
        ),
        (
            {"shifts": {"x": {"sources": [], "targets": ["boolq"]}}},
            r"routing.shifts.x.sources: must be a non-empty list",
        ),
        (
            {"shifts": {"x": {"sources": ["gsm8k"]}}},
            r"routing.shifts.x: must have exactly the keys sources and targets",
        ),
        ({"table4": {"target": "coqa"}}, r"routing.table4.target: 'coqa' is not a dataset"),
        ({"table4": {"llm": "gpt"}}, r"routing.table4.llm: 'gpt' is not an LLM"),
        ({"table4": {"slms": ["s1", "s9"]}}, r"routing.table4.slms: \['s9'\] are not SLMs"),
        ({"table4": {"method": "verbal_1s"}}, r"routing.table4.method: 'verbal_1s' is not one of the proxy methods"),
        ({"table4": {"colour": "red"}}, r"routing.table4: unknown key"),
        (
            {"table5": {"shifts": ["commonsense_to_math"]}},
            r"routing.table5.shifts: \['commonsense_to_math'\] are not shifts",
        ),
        ({"table5": {"llm": "l9"}}, r"routing.table5.llm"),
        ({"table5": {"slms": ["s3"]}}, r"routing.table5.slms"),
        ({"assemble": "some"}, r"routing.assemble: must be one of \['all', 'available'\]"),
        ({"rows": "intersection"}, r"routing.rows: must be one of \['per_method', 'common'\]"),
    ],
)
def test_each_mistake_names_its_key(patch, key):
    cfg = copy.deepcopy(GOOD)
    for k, v in patch.items():
        cfg[k] = (cfg.get(k) or {}) | v if k in ("table4", "table5") and isinstance(v, dict) else v
    with pytest.raises(RoutingConfigError, match=key):
        check(cfg)
    assert issubclass(RoutingConfigError, ValueError)


def test_an_slm_named_like_a_routing_folder_is_refused():
    with pytest.raises(RoutingConfigError, match=r"^slms: \['tables'\]"):
        check_config({}, DATASETS, METHODS, slms=["s1", "tables"])


def test_proxy_methods_all_means_every_uq_method():
    check_config({"proxy_methods": "all", "table4": {"method": "verbal_1s"}}, DATASETS, METHODS)


def test_defaults_agree_with_the_config_schema():
    """DEFAULTS is the library's copy; config/schema.yaml is what Snakemake fills in: they must agree."""
    schema = yaml.safe_load((ROOT / "config/schema.yaml").read_text())["properties"]["routing"]["properties"]
    assert set(schema) == set(DEFAULTS)
    for key, value in DEFAULTS.items():
        if key in ("table4", "table5"):
            assert {k: v["default"] for k, v in schema[key]["properties"].items()} == value, key
        else:
            assert schema[key]["default"] == value, key


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml", "test-mirror.yaml", "test-slurm.yaml"])
def test_shipped_configs_pass(name):
    cfg = yaml.safe_load((ROOT / "config" / name).read_text())
    check_config(cfg.get("routing"), cfg["datasets"], cfg["uq"]["methods"], slms=cfg["slms"], llms=cfg["llms"])


def test_the_paper_preset_carries_the_papers_shifts_and_tables():
    """App. G and Figure 7, exactly as the paper names them."""
    r = yaml.safe_load((ROOT / "config/paper.yaml").read_text())["routing"]
    commonsense = ["boolq", "commonsenseqa", "hellaswag", "openbookqa", "piqa", "socialiqa", "truthfulqa", "winogrande"]
    assert r["shifts"]["math_to_commonsense"] == {
        "sources": ["gsm8k", "aqua", "multiarith", "svamp"],
        "targets": ["truthfulqa"],
    }
    assert r["shifts"]["commonsense_to_math"] == {"sources": commonsense, "targets": ["aqua"]}
    assert r["shifts"]["commonsense_conversational_to_math"] == {"sources": commonsense + ["coqa"], "targets": ["aqua"]}
    assert r["table4"] == {
        "target": "hellaswag",
        "llm": "gpt-4.1-mini",
        "method": "perplexity",
        "slms": ["llama-3.2-3b", "mistral-7b", "llama-3.1-8b"],
    }
    assert r["table5"]["llm"] == "llama-3.1-70b" and r["table5"]["slms"] == [
        "phi-3.5-mini",
        "mistral-7b",
        "llama-3.1-8b",
    ]
    assert r["table5"]["shifts"] == ["math_to_commonsense", "commonsense_to_math"]
    assert r["proxy_methods"] == ["perplexity", "ood_probe"] and r["bins"] == 30 and r["k"] == 0.1 and 50 in r["seeds"]


@pytest.mark.parametrize("name", ["paper.yaml", "config.yaml"])
def test_the_paper_preset_and_the_demo_keep_the_papers_per_method_rows(name):
    """The paper discards a query only for the method that cannot score it (§3.1); `common` is ours."""
    assert DEFAULTS["rows"] == "per_method"
    cfg = yaml.safe_load((ROOT / "config" / name).read_text())
    p = check_config(cfg.get("routing"), cfg["datasets"], cfg["uq"]["methods"], slms=cfg["slms"], llms=cfg["llms"])
    assert p["rows"] == "per_method"
    assert check({"rows": "common"})["rows"] == "common"


def test_the_demo_shifts_fit_its_datasets():
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    from uqroute.routing.synthetic import DOMAINS

    for name, shift in cfg["routing"]["shifts"].items():
        src = {DOMAINS[d] for d in shift["sources"]}
        tgt = {DOMAINS[d] for d in shift["targets"]}
        assert not src & tgt, name  # really out of domain


def test_scenarios():
    sc = scenarios(["a", "b", "c"], {"s": {"sources": ["a"], "targets": ["b", "c"]}})
    assert [(x.setting, x.target, x.sources) for x in sc] == [
        (PARTIAL_IN_DOMAIN, "a", ("b", "c")),
        (PARTIAL_IN_DOMAIN, "b", ("a", "c")),
        (PARTIAL_IN_DOMAIN, "c", ("a", "b")),
        ("s", "b", ("a",)),
        ("s", "c", ("a",)),
    ]
    assert scenarios(["a"], {}) == []


def test_the_generic_out_of_domain_setting_pools_the_other_domains():
    from uqroute.routing import OUT_OF_DOMAIN

    domains = {"a": "math", "b": "math", "c": "commonsense", "d": "conversational"}
    sc = [x for x in scenarios(list(domains), {}, domains) if x.setting == OUT_OF_DOMAIN]
    assert [(x.target, x.sources) for x in sc] == [
        ("a", ("c", "d")),
        ("b", ("c", "d")),
        ("c", ("a", "b", "d")),
        ("d", ("a", "b", "c")),
    ]
    assert not [
        x for x in scenarios(["a", "b"], {}, {"a": "math", "b": "math"}) if x.setting == OUT_OF_DOMAIN
    ]  # no other domain
    assert all(x.setting != OUT_OF_DOMAIN for x in scenarios(list(domains), {}))  # off without domains
    with pytest.raises(RoutingConfigError, match="out_of_domain"):
        check(GOOD | {"shifts": {OUT_OF_DOMAIN: {"sources": ["gsm8k"], "targets": ["boolq"]}}})
    with pytest.raises(RoutingConfigError, match="routing.out_of_domain: must be true or false"):
        check(GOOD | {"out_of_domain": "yes"})


def test_the_paper_preset_runs_the_generic_out_of_domain_setting_and_table5_for_both_proxy_methods():
    """§4.2 names two settings (fully out-of-domain, partially in-domain); Table 5's UQ method is not named,
    so the preset shows it for both proxy methods of §4.2."""
    r = yaml.safe_load((ROOT / "config/paper.yaml").read_text())["routing"]
    assert r["out_of_domain"] is True
    assert r["table5"]["method"] is None and r["proxy_methods"] == ["perplexity", "ood_probe"]


def test_proxy_probe_pairs_cover_every_source_target_pair_once():
    from uqroute.routing import proxy_probe_pairs

    ds = ["a", "b", "c", "d"]
    sc = scenarios(ds, {"s": {"sources": ["d"], "targets": ["a"]}})
    assert proxy_probe_pairs(sc, ds) == [("a", "b"), ("a", "c"), ("a", "d"), ("b", "c"), ("b", "d"), ("c", "d")]
    only = [x for x in sc if x.setting == "s"]
    assert proxy_probe_pairs(only, ds) == [("a", "d")]  # (d, a) and (a, d) are one probe, in run order
    assert proxy_probe_pairs(scenarios(["a", "b"], {}), ["a", "b"]) == []  # no third dataset to train on


def test_proxy_probe_jobs_share_the_pairs_evenly_among_the_datasets():
    """Each pair has one owner (round-robin over the run order), so each dataset's proxy_probe job
    trains ⌊(n−1)/2⌋ or ⌈(n−1)/2⌉ probes: 7 of the paper's 105, every pair exactly once."""
    from uqroute.routing import proxy_probe_jobs, proxy_probe_owner, proxy_probe_pairs

    for n in range(3, 17):
        ds = [f"d{i}" for i in range(n)]
        pairs = proxy_probe_pairs(scenarios(ds, {}), ds)
        jobs = proxy_probe_jobs(pairs, ds)
        assert sorted(p for owned in jobs.values() for p in owned) == sorted(pairs)
        assert {len(v) for v in jobs.values()} <= {(n - 1) // 2, n // 2}, n
        assert list(jobs) == ds  # every dataset owns some pair, owners in run order
        assert all(d in p for d, owned in jobs.items() for p in owned)  # a job owns pairs of its own dataset
    ds = ["a", "b", "c", "d"]  # n = 4: pairs at distance 2 go to the earlier dataset
    assert [proxy_probe_owner(p, ds) for p in (("a", "b"), ("a", "c"), ("a", "d"), ("b", "d"), ("d", "b"))] == [
        "a",
        "a",
        "d",
        "b",
        "b",
    ]
    assert (
        len(proxy_probe_jobs(proxy_probe_pairs(scenarios(ds := [f"d{i}" for i in range(15)], {}), ds), ds)["d3"]) == 7
    )
    # only the owners of needed pairs get a job
    assert proxy_probe_jobs([("b", "c")], ["a", "b", "c", "d"]) == {"b": [("b", "c")]}
    assert proxy_probe_jobs([], ["a", "b", "c"]) == {}
    with pytest.raises(ValueError, match=r"proxy-probe pair \('a', 'x'\): needs two different datasets"):
        proxy_probe_owner(("a", "x"), ["a", "b", "c"])
    with pytest.raises(ValueError, match="needs two different datasets"):
        proxy_probe_owner(("a", "a"), ["a", "b", "c"])

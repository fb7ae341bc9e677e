"""Probes on synthetic artifacts: planted signal, leave-one-dataset-out, cross-fitting,
one-class labels, determinism, saved weights and bad input."""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pytest
from safetensors import safe_open
from sklearn.metrics import roc_auc_score

import uqroute.probes.train as train_mod
from uqroute.io import ArtifactInputError, write_hidden_states, write_parquet
from uqroute.probes import (
    ProbeInputError,
    ProbeWarning,
    crossfit_predict,
    fit_probe,
    load_probe,
    run_probes,
    run_proxy_probes,
    save_probe,
    save_probes,
)
from uqroute.schema import ARTIFACTS, check_frame

D = 16
W = np.random.default_rng(123).normal(size=D)  # the planted direction: correct iff x·w > 0
SMALL = {"hidden_sizes": [32, 16, 8], "epochs": 20, "lr": 5e-3, "ood_lr": 5e-3, "batch_size": 32, "crossfit_folds": 5}
QUICK = {**SMALL, "epochs": 3}  # for tests of the mechanics, not of accuracy
QUICK_FIT = {"hidden_sizes": [8, 4], "epochs": 2, "lr": 5e-3, "batch_size": 16}


def write_dataset(root, name, n_train, n_eval, *, seed, labels=None, states=None, label_null=()):
    """Write data / hidden-states / correctness artifacts of a synthetic dataset; return paths and arrays."""
    rng = np.random.default_rng(seed)
    ids = [f"{name}/train/{i}" for i in range(n_train)] + [f"{name}/test/{i}" for i in range(n_eval)]
    roles = ["train"] * n_train + ["eval"] * n_eval
    n = len(ids)
    x = rng.normal(size=(n, D)) if states is None else states
    y = (x @ W > 0) if labels is None else np.asarray(labels, dtype=bool)
    data = pl.DataFrame(
        {
            "id": ids,
            "dataset": [name] * n,
            "domain": ["math"] * n,
            "task_type": ["FF"] * n,
            "split": [i.split("/")[1] for i in ids],
            "role": roles,
            "question": ["q"] * n,
            "context": [None] * n,
            "choices": [[]] * n,
            "answer": ["1"] * n,
            "references": [["1"]] * n,
            "prompt": ["p"] * n,
        },
        schema=ARTIFACTS["data"].polars_schema(),
    )
    correct = [None if i in label_null else bool(v) for i, v in enumerate(y)]
    corr = pl.DataFrame(
        {
            "id": ids,
            "correct": correct,
            "label_source": ["rule"] * n,
            "rule_correct": correct,
            "judge_correct": [None] * n,
            "judge_verdict": [None] * n,
            "judge_raw": [None] * n,
            "verbal_1s_correct": [None] * n,
            "judge_method": [None] * n,
            "judge_p_correct": [None] * n,
        },
        schema=ARTIFACTS["correctness"].polars_schema(),
    )
    paths = {k: root / f"{name}.{k}" for k in ("data", "hidden", "correctness")}
    write_parquet(data, paths["data"], "data")
    write_parquet(corr, paths["correctness"], "correctness")
    order = rng.permutation(n)  # the hidden file need not be in data order
    write_hidden_states(paths["hidden"], [ids[i] for i in order], x[order], layer=3, model="toy", dataset=name)
    x16 = x.astype(np.float16).astype(np.float64)  # what the probe reads back
    return {"paths": paths, "ids": ids, "x": x16, "y": y, "eval": np.array(roles) == "eval"}


def probe_run(root, out, sets, target, cfg=SMALL, seed=0):
    names = list(sets)
    out.mkdir(parents=True, exist_ok=True)
    files = {k: out / f"{target}.{k}" for k in ("parquet", "trained.safetensors", "ood.safetensors")}
    table = run_probes(
        target=target,
        datasets=names,
        data_paths=[sets[n]["paths"]["data"] for n in names],
        hidden_paths=[sets[n]["paths"]["hidden"] for n in names],
        correctness_paths=[sets[n]["paths"]["correctness"] for n in names],
        out_path=files["parquet"],
        trained_weights_path=files["trained.safetensors"],
        ood_weights_path=files["ood.safetensors"],
        cfg=cfg,
        seed=seed,
    )
    return table, files


@pytest.fixture()
def three(tmp_path):
    return {
        "a": write_dataset(tmp_path, "a", 200, 150, seed=1),
        "b": write_dataset(tmp_path, "b", 100, 100, seed=2),
        "c": write_dataset(tmp_path, "c", 0, 120, seed=3),  # no training rows → cross-fitting
    }


def auc(table, ds):
    return roc_auc_score(ds["y"][ds["eval"]], table)


def test_planted_signal_is_separated_with_the_paper_architecture(tmp_path, three):
    """Default config (hidden 256/128/64, lr 5e-4 / 1e-4, 20 epochs): AUC > 0.9 on held-out rows."""
    table, files = probe_run(tmp_path, tmp_path / "out", three, "a", cfg={})
    check_frame(table, "probes")
    ds = three["a"]
    assert table["id"].to_list() == [i for i, e in zip(ds["ids"], ds["eval"]) if e]
    assert set(table["trained_probe_scheme"]) == {"train_split"}
    assert auc(table["trained_probe"], ds) > 0.9
    assert auc(table["ood_probe"], ds) > 0.9
    assert pl.read_parquet(files["parquet"]).equals(table)


def test_saved_weights_reproduce_scores_and_carry_metadata(tmp_path, three):
    table, files = probe_run(tmp_path, tmp_path / "out", three, "a", cfg=QUICK)
    probe, meta = load_probe(files["trained.safetensors"])
    ds = three["a"]
    np.testing.assert_allclose(probe.predict(ds["x"][ds["eval"]]), table["trained_probe"].to_numpy(), rtol=1e-6)
    assert meta["scheme"] == "train_split" and json.loads(meta["training_datasets"]) == ["a"]
    assert json.loads(meta["hidden_sizes"]) == [32, 16, 8] and json.loads(meta["input_dim"]) == D
    assert json.loads(meta["n_train"]) == 200 and json.loads(meta["seed"]) == 0
    with safe_open(str(files["trained.safetensors"]), framework="numpy") as f:
        names = set(f.keys())
        train_x = ds["x"][~ds["eval"]]
        np.testing.assert_allclose(f.get_tensor("feature_mean"), train_x.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(f.get_tensor("feature_std"), train_x.std(0), rtol=1e-5)  # training rows only
    assert {"0.weight", "6.bias", "feature_mean", "feature_std", "base_rate"} <= names


def test_lodo_never_trains_on_the_held_out_dataset(tmp_path, three):
    table, files = probe_run(tmp_path, tmp_path / "out1", three, "a", cfg=QUICK)
    meta = load_probe(files["ood.safetensors"])[1]
    assert json.loads(meta["training_datasets"]) == ["b", "c"]
    assert json.loads(meta["n_train"]) == 100 + 100 + 120  # every labelled row of b and c

    # poison the target: flip every label and scramble its training rows' hidden states
    a = three["a"]
    x = a["x"].copy()
    x[~a["eval"]] = np.random.default_rng(9).normal(size=x[~a["eval"]].shape) * 50
    (tmp_path / "poison").mkdir()
    poisoned = dict(three, a=write_dataset(tmp_path / "poison", "a", 200, 150, seed=1, labels=~a["y"], states=x))
    table2, files2 = probe_run(tmp_path, tmp_path / "out2", poisoned, "a", cfg=QUICK)
    assert table2["ood_probe"].to_list() == table["ood_probe"].to_list()
    assert files2["ood.safetensors"].read_bytes() == files["ood.safetensors"].read_bytes()
    # ... while the in-domain probe did see the poison
    assert table2["trained_probe"].to_list() != table["trained_probe"].to_list()


def test_crossfit_when_no_training_rows(tmp_path, three):
    table, files = probe_run(tmp_path, tmp_path / "out", three, "c")
    assert set(table["trained_probe_scheme"]) == {"crossfit"}
    assert auc(table["trained_probe"], three["c"]) > 0.85
    meta = load_probe(files["trained.safetensors"])[1]
    assert meta["scheme"] == "crossfit" and json.loads(meta["n_folds"]) == 5
    assert json.loads(meta["n_train"]) == 120  # saved weights: the probe fit on all eval rows


def test_crossfit_never_scores_a_row_with_a_probe_that_saw_it(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, D))
    x[:, 0] = np.arange(60)  # row fingerprint
    y = (x[:, 1:] @ W[1:] > 0).astype(float)
    y[[5, 17]] = np.nan  # unlabelled rows: never trained on
    seen = []
    real_fit = train_mod.fit_probe

    def spy(xs, ys, **kw):
        seen.append((kw["label"], set(xs[:, 0].astype(int))))
        return real_fit(xs, ys, **kw)

    monkeypatch.setattr(train_mod, "fit_probe", spy)
    res = crossfit_predict(x, y, folds=4, seed=0, hidden_sizes=[8, 8, 8], epochs=2, batch_size=16)
    assert res.scheme == "crossfit" and res.n_folds == 4 and len(seen) == 5
    for f in range(4):
        trained_on = seen[f][1]
        scored = set(np.flatnonzero(res.fold == f))
        assert scored and not (trained_on & scored)
        assert trained_on | scored == set(range(60)) - {5, 17}
    assert seen[4][1] == set(range(60)) - {5, 17}  # the saved "full" probe
    assert list(np.flatnonzero(res.fold == -1)) == [5, 17]
    assert not (seen[4][1] & {5, 17})
    assert np.isfinite(res.scores).all()


def test_one_class_training_labels_give_a_warned_constant(tmp_path, three):
    sets = dict(three, a=write_dataset(tmp_path, "a", 30, 20, seed=1, labels=[True] * 30 + [False] * 20))
    with pytest.warns(ProbeWarning, match=r"trained_probe\[a\]: all 30 training labels are True"):
        table, files = probe_run(tmp_path, tmp_path / "out", sets, "a", cfg=QUICK)
    assert set(table["trained_probe_scheme"]) == {"constant"}
    assert table["trained_probe"].to_list() == [1.0] * 20
    probe, meta = load_probe(files["trained.safetensors"])
    assert meta["constant_reason"] == "all 30 training labels are True"
    assert meta["kind"] == "constant" and probe.predict(np.zeros((3, D))).tolist() == [1.0] * 3


def test_too_few_minority_rows_for_crossfit_reduce_folds_or_go_constant():
    x = np.random.default_rng(0).normal(size=(12, D))
    y = np.array([1.0] * 3 + [0.0] * 9)
    with pytest.warns(ProbeWarning, match="3 folds instead of 5"):
        res = crossfit_predict(x, y, folds=5, hidden_sizes=[4, 4, 4], epochs=1)
    assert res.n_folds == 3 and res.scheme == "crossfit"
    y[1:3] = 0.0
    with pytest.warns(ProbeWarning, match="too few for 5-fold"):
        res = crossfit_predict(x, y, folds=5, hidden_sizes=[4, 4, 4], epochs=1)
    assert res.scheme == "constant" and np.allclose(res.scores, 1 / 12)


def test_deterministic_outputs_and_weight_bytes(tmp_path, three):
    t1, f1 = probe_run(tmp_path, tmp_path / "r1", three, "c", cfg=QUICK, seed=7)
    t2, f2 = probe_run(tmp_path, tmp_path / "r2", three, "c", cfg=QUICK, seed=7)
    assert t1.equals(t2)
    for k in ("parquet", "trained.safetensors", "ood.safetensors"):
        assert f1[k].read_bytes() == f2[k].read_bytes(), k
    t3, _ = probe_run(tmp_path, tmp_path / "r3", three, "c", cfg=QUICK, seed=8)
    assert not t3["trained_probe"].equals(t1["trained_probe"])


def test_fit_probe_does_not_touch_global_rng():
    import torch

    state = torch.random.get_rng_state()
    x = np.random.default_rng(0).normal(size=(20, D))
    fit_probe(x, (x @ W > 0).astype(float), hidden_sizes=[4, 4, 4], epochs=2)
    assert torch.equal(state, torch.random.get_rng_state())


def test_hidden_ids_not_matching_data_name_the_file(tmp_path, three):
    bad = three["b"]["paths"]["hidden"]
    ids = three["b"]["ids"][:-1] + ["b/test/999"]
    write_hidden_states(bad, ids, three["b"]["x"], layer=3, model="toy", dataset="b")
    out = tmp_path / "out"
    with pytest.raises(
        ArtifactInputError,
        match=rf"dataset 'b': hidden-states file {bad} lacks 1 expected id\(s\).*b/test/99'\].*holds 1 unexpected.*b/test/999",
    ):
        probe_run(tmp_path, out, three, "a")
    assert not any(out.iterdir())  # nothing written


def test_null_labels_are_dropped_but_rows_still_scored(tmp_path, three):
    sets = dict(three, a=write_dataset(tmp_path, "a", 40, 30, seed=1, label_null={0, 1, 45}))
    table, files = probe_run(tmp_path, tmp_path / "out", sets, "a", cfg=QUICK)
    assert table.height == 30 and table["trained_probe"].null_count() == 0
    assert json.loads(load_probe(files["trained.safetensors"])[1]["n_train"]) == 38


def test_single_dataset_run_is_a_clear_error(tmp_path, three):
    with pytest.raises(ValueError, match="OOD probe for 'a' trains on the run's other datasets"):
        probe_run(tmp_path, tmp_path / "out", {"a": three["a"]}, "a")


@pytest.mark.parametrize("which", ["data", "hidden", "correctness"])
@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing"])
def test_corrupt_input_names_the_file_and_writes_nothing(tmp_path, three, which, damage):
    """A truncated, garbage or missing input of rule `probe`: the error names the dataset and the file."""
    path = three["b"]["paths"][which]
    if damage == "missing":
        path.unlink()
    else:
        blob = path.read_bytes()
        path.write_bytes(blob[: len(blob) // 2] if damage == "truncate" else b"<html>502 Bad Gateway</html>")
    what = {"data": "data", "hidden": "hidden-states", "correctness": "correctness"}[which]
    out = tmp_path / "out"
    with pytest.raises(ArtifactInputError, match=rf"probe, dataset 'b': {what} file {re.escape(str(path))}"):
        probe_run(tmp_path, out, three, "a", cfg=QUICK)
    assert not any(out.iterdir())  # nothing written


def test_probe_defaults_come_from_the_config_schema(monkeypatch):
    """fit_probe / crossfit_predict / run_probes take unset settings from uqroute.settings.defaults("probe")."""
    import uqroute.probes.run as run_mod
    from uqroute import settings

    with pytest.warns(ProbeWarning):
        probe = fit_probe(np.zeros((4, 3)), np.ones(4))  # one class: a constant probe, but it records its sizes
    assert list(probe.hidden_sizes) == settings.defaults("probe")["hidden_sizes"]
    schema_defaults = settings.defaults("probe")
    monkeypatch.setattr(
        settings, "defaults", lambda section: {**schema_defaults, "epochs": 7} if section == "probe" else None
    )
    assert run_mod.probe_settings({"lr": 1e-3}) == {**schema_defaults, "epochs": 7, "lr": 1e-3}
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['epoch'\]"):
        run_mod.probe_settings({"epoch": 3})


# ------------------------------------------------------------------ leak-free probes for the proxy pools (rule proxy_probe)
def proxy_probe_run(out, sets, pair, cfg=QUICK, seed=0, pairs=None):
    """Rule proxy_probe for ``pairs`` (default: the one ``pair``), files named after ``pair``."""
    names = list(sets)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "parquet": out / f"{pair[0]}+{pair[1]}.parquet",
        "weights": out / f"{pair[0]}+{pair[1]}.ood_probe.safetensors",
    }
    table = run_proxy_probes(
        pairs=[list(pair)] if pairs is None else pairs,
        datasets=names,
        data_paths=[sets[n]["paths"]["data"] for n in names],
        hidden_paths=[sets[n]["paths"]["hidden"] for n in names],
        correctness_paths=[sets[n]["paths"]["correctness"] for n in names],
        out_path=files["parquet"],
        weights_path=files["weights"],
        cfg=cfg,
        seed=seed,
    )
    return table, files


def poison(root, sets, name):
    """``name`` with every label flipped and every hidden state scrambled, written under ``root``."""
    ds = sets[name]
    root.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(9).normal(size=ds["x"].shape) * 50
    n_train, n_eval = int((~ds["eval"]).sum()), int(ds["eval"].sum())
    return dict(sets, **{name: write_dataset(root, name, n_train, n_eval, seed=1, labels=~ds["y"], states=x)})


def test_proxy_probe_trains_without_both_and_scores_both(tmp_path, three):
    table, files = proxy_probe_run(tmp_path / "out", three, ("a", "b"))
    check_frame(table, "proxy_probe")
    for name, other in (("a", "b"), ("b", "a")):
        rows = table.filter(pl.col("dataset") == name)
        assert rows["id"].to_list() == [i for i, e in zip(three[name]["ids"], three[name]["eval"]) if e]
        assert set(rows["other"]) == {other}
    probe, meta = load_probe(files["weights"], "a+b")
    assert json.loads(meta["training_datasets"]) == ["c"] and json.loads(meta["held_out"]) == ["a", "b"]
    assert json.loads(meta["n_train"]) == 120 and meta["scheme"] == "leave_two_datasets_out"
    a = table.filter(pl.col("dataset") == "a")["ood_probe"].to_numpy()
    np.testing.assert_allclose(probe.predict(three["a"]["x"][three["a"]["eval"]]), a, rtol=1e-6)
    # one probe per unordered pair: (b, a) is the same probe (seed from the sorted names)
    again, files2 = proxy_probe_run(tmp_path / "out2", three, ("b", "a"))
    probe2, meta2 = load_probe(files2["weights"], "b+a")
    assert meta2 == meta
    for name in ("a", "b"):
        rows = pl.col("dataset") == name
        assert again.filter(rows)["ood_probe"].to_list() == table.filter(rows)["ood_probe"].to_list()
    with pytest.raises(ProbeInputError, match="needs a third dataset"):
        proxy_probe_run(tmp_path / "out3", {k: three[k] for k in ("a", "b")}, ("a", "b"))


def test_proxy_probe_never_reads_the_held_out_datasets(tmp_path, three):
    """Flipping every label and scrambling every hidden state of target 'a' leaves the scores of
    source 'b' from the probe held out of (a, b) unchanged, byte for byte; the leave-one-dataset-out
    probe of 'b', which trained on 'a', changes."""
    table, files = proxy_probe_run(tmp_path / "clean", three, ("a", "b"))
    poisoned = poison(tmp_path / "poison", three, "a")
    table2, files2 = proxy_probe_run(tmp_path / "dirty", poisoned, ("a", "b"))
    b = pl.col("dataset") == "b"
    assert table2.filter(b)["ood_probe"].to_list() == table.filter(b)["ood_probe"].to_list()
    assert files2["weights"].read_bytes() == files["weights"].read_bytes()
    lodo, _ = probe_run(tmp_path, tmp_path / "lodo", three, "b", cfg=QUICK)
    lodo2, _ = probe_run(tmp_path, tmp_path / "lodo2", poisoned, "b", cfg=QUICK)
    assert lodo2["ood_probe"].to_list() != lodo["ood_probe"].to_list()  # the leak the proxy probe removes


@pytest.fixture()
def four(tmp_path, three):
    return {**three, "d": write_dataset(tmp_path, "d", 60, 80, seed=4)}


def test_one_proxy_probe_job_trains_each_pair_as_if_alone(tmp_path, four):
    """A job of several pairs (one owner's) gives every pair the scores and the probe of a job of
    that pair alone, byte for byte: each probe keeps its own seed and training datasets."""
    from uqroute.routing import proxy_probe_jobs, proxy_probe_pairs, scenarios

    names = list(four)
    jobs = proxy_probe_jobs(proxy_probe_pairs(scenarios(names, {}), names), names)
    assert jobs == {"a": [("a", "b"), ("a", "c")], "b": [("b", "c"), ("b", "d")], "c": [("c", "d")], "d": [("a", "d")]}
    table, files = proxy_probe_run(tmp_path / "job", four, ("b", "c"), pairs=jobs["b"])
    check_frame(table, "proxy_probe")
    assert table.select("dataset", "other").unique(maintain_order=True).rows() == [
        ("b", "c"),
        ("c", "b"),
        ("b", "d"),
        ("d", "b"),
    ]
    with safe_open(str(files["weights"]), framework="pt") as f:
        assert json.loads(f.metadata()["probes"]) == ["b+c", "b+d"]
    for pair in jobs["b"]:
        alone, alone_files = proxy_probe_run(tmp_path / "+".join(pair), four, pair)
        for d, o in (pair, pair[::-1]):
            rows = (pl.col("dataset") == d) & (pl.col("other") == o)
            assert table.filter(rows).drop("other").equals(alone.filter(pl.col("dataset") == d).drop("other"))
        (probe, meta), (probe1, meta1) = (
            load_probe(files["weights"], "+".join(pair)),
            load_probe(alone_files["weights"], "+".join(pair)),
        )
        assert meta == meta1
        assert json.loads(meta["training_datasets"]) == [d for d in names if d not in pair]
        for a, b in zip(probe.net.state_dict().values(), probe1.net.state_dict().values()):
            assert np.array_equal(a.numpy(), b.numpy())


def test_proxy_probe_job_refuses_bad_pairs(tmp_path, four):
    for pairs, msg in (
        ([], "no pair"),
        ([["a", "a"]], "two different datasets"),
        ([["a", "x"]], "two different datasets"),
        ([["a", "b"], ["b", "a"]], r"\['a', 'b'\]\] given more than once"),
    ):
        with pytest.raises(ValueError, match=msg):
            proxy_probe_run(tmp_path / "bad", four, ("a", "b"), pairs=pairs)
        assert (
            not (tmp_path / "bad" / "a+b.parquet").exists()
            and not (tmp_path / "bad" / "a+b.ood_probe.safetensors").exists()
        )


def test_several_probes_in_one_file_are_read_by_name(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, D)), rng.random(60) > 0.5
    one = fit_probe(x, y, seed=1, label="one", **QUICK_FIT)
    two = fit_probe(x, ~y, seed=2, label="two", **QUICK_FIT)
    save_probes(tmp_path / "both.safetensors", {"p+q": (one, {"seed": 1}), "p+r": (two, {"seed": 2})})
    save_probe(tmp_path / "one.safetensors", one, seed=1)
    got, meta = load_probe(tmp_path / "both.safetensors", "p+q")
    alone, meta1 = load_probe(tmp_path / "one.safetensors")
    assert meta == meta1
    np.testing.assert_array_equal(got.predict(x), alone.predict(x))
    assert not np.array_equal(load_probe(tmp_path / "both.safetensors", "p+r")[0].predict(x), alone.predict(x))
    with pytest.raises(ValueError, match=r"holds the probes \['p\+q', 'p\+r'\]; name one of them \(got 'p'\)"):
        load_probe(tmp_path / "both.safetensors", "p")
    with pytest.raises(ValueError, match="holds one probe, not several"):
        load_probe(tmp_path / "one.safetensors", "p+q")
    with pytest.raises(ValueError, match="may not be empty or hold '/'"):
        save_probes(tmp_path / "bad.safetensors", {"a/b": (one, {})})
    with pytest.raises(ValueError, match="no probe to save"):
        save_probes(tmp_path / "bad.safetensors", {})
    assert not (tmp_path / "bad.safetensors").exists()


def _routing_inputs(root, sets, slm="s", llm="l"):
    """The pipeline from probes to routing inputs on the tiny fixtures: rule probe for every
    dataset (the uq column ood_probe), rule proxy_probe for every owner of pairs, correctness copies."""
    from uqroute.routing import proxy_probe_jobs, proxy_probe_pairs, scenarios

    names = list(sets)
    uq, corr, data = [], [], []
    for d in names:
        table, _ = probe_run(root, root / "probes" / d, sets, d, cfg=QUICK)
        path = root / "uq" / slm / f"{d}.parquet"
        write_parquet(table.select("id", "ood_probe"), path, "uq")
        uq.append(str(path))
        data.append(str(sets[d]["paths"]["data"]))
    for model in (slm, llm):
        for d in names:
            path = root / "correctness" / model / f"{d}.parquet"
            write_parquet(pl.read_parquet(sets[d]["paths"]["correctness"]), path, "correctness")
            corr.append(str(path))
    proxy = []
    for owned in proxy_probe_jobs(proxy_probe_pairs(scenarios(names, {}), names), names).values():
        _, files = proxy_probe_run(root / "probes" / slm / "proxy", sets, owned[0], pairs=owned)
        proxy.append(str(files["parquet"]))
    return uq, corr, data, proxy


def test_a_targets_rows_never_reach_the_probe_that_scores_its_proxy_pool(tmp_path, three):
    """End to end on the tiny fixtures (probe → proxy_probe → routing): poisoning target 'a' (labels
    flipped, hidden states scrambled) leaves every confidence of its proxy pool unchanged."""
    from uqroute.routing import evaluate, load_inputs

    params = {
        "ratio_step": 0.1,
        "bins": 5,
        "k": 0.5,
        "seeds": [50],
        "k_sweep": [],
        "bootstrap": 0,
        "random_mc": 0,
        "proxy_methods": ["ood_probe"],
        "shifts": {},
        "table4": {},
        "table5": {},
    }

    def holdout(root, sets):
        uq, corr, data, proxy = _routing_inputs(root, sets)
        inputs = load_inputs(uq, corr, data, slms=["s"], llms=["l"], datasets=list(sets), proxy_probe_paths=proxy)
        t = evaluate(inputs, params, seed=0)
        return t["holdout"].filter(pl.col("target") == "a"), inputs

    clean, inputs = holdout(tmp_path / "clean", three)
    dirty, inputs2 = holdout(tmp_path / "dirty", poison(tmp_path / "poison", three, "a"))
    assert clean.height == 1 and sorted(set(clean["source_dataset"][0].to_list())) == ["b", "c"]
    for col in ("source_dataset", "id", "confidence", "threshold", "q"):
        assert dirty[col].to_list() == clean[col].to_list(), col
    # the sources' own ood_probe scores (leave-one-dataset-out, trained on 'a') did change: they must not enter a's pool
    assert not np.allclose(inputs.cells[("s", "b")].conf["ood_probe"], inputs2.cells[("s", "b")].conf["ood_probe"])
    pool = dict(zip(clean["id"][0].to_list(), clean["confidence"][0].to_list()))
    leak_free = dict(zip(inputs.cells[("s", "b")].ids, inputs.leak_free[("s", "b", "a")]))
    assert all(pool[i] == leak_free[i] for i in pool if i.startswith("b/"))

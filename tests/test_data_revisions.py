"""Dataset revisions and the revisions lock: what a run read is recorded, and a later run reads exactly that.

* the ``data`` artifact's provenance names its source: the hub commit the revision resolved to, or
  the sha256 of each slices/mirror file;
* ``data.revisions`` pins a hub dataset like ``models.<name>.revision`` pins a model;
* ``results/revisions.lock.yaml`` (rule ``revisions_lock``) collects every model and dataset
  revision; the config key ``revisions_lock`` makes the next run use exactly those, and anything
  else is an error naming the model or dataset.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from uqroute import io, revisions
from uqroute.data import DatasetError, build_dataset, get_spec
from uqroute.revisions import RevisionsLockError

ROOT = Path(__file__).resolve().parents[1]
SLICES = ROOT / "data" / "slices"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
COMMIT = "e53f048856ff4f594e959d75785d2c2d37b678ee"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_data_artifact_names_the_slice_files_it_was_read_from(tmp_path):
    out = tmp_path / "commonsenseqa.parquet"
    build_dataset(
        "commonsenseqa",
        out,
        seed=0,
        source="slices",
        slices_dir=str(SLICES),
        eval_limit=4,
        train_limit=2,
        provenance=io.provenance({"data": "x"}),
    )
    spec = get_spec("commonsenseqa")
    record = io.read_provenance(out)["datasets"]["commonsenseqa"]
    assert record == {
        "source": "slices",
        "hub": "tau/commonsense_qa",
        "config": None,
        "files": {spec.split_file(s): _sha(SLICES / spec.split_file(s)) for s in ("validation", "train")},
    }
    assert io.read_provenance(out)["config_sha256"] == io.fingerprint({"data": "x"})


def _fake_hub(monkeypatch, resolved=COMMIT):
    import datasets

    calls, resolves = [], []

    def fake_load_dataset(path, name=None, *, split=None, revision=None, **kw):
        calls.append((split, revision))
        return datasets.Dataset.from_list([{"question": "What is 1+1?", "answer": "1+1=2\n#### 2"}] * 3)

    def fake_resolve(spec, revision):
        resolves.append(revision)
        return resolved

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr("uqroute.data.build.resolve_hub_commit", fake_resolve)
    return calls, resolves


def test_a_hub_dataset_is_read_at_the_commit_its_revision_resolves_to(tmp_path, monkeypatch):
    """Both splits come from the one resolved commit, and the artifact records it."""
    calls, resolves = _fake_hub(monkeypatch)
    build_dataset("gsm8k", tmp_path / "g.parquet", source="hub", eval_limit=2, train_limit=1)
    assert resolves == [None] and calls == [("test", COMMIT), ("train", COMMIT)]
    assert io.read_provenance(tmp_path / "g.parquet")["datasets"]["gsm8k"] == {
        "source": "hub",
        "hub": "openai/gsm8k",
        "config": "main",
        "revision": None,
        "commit": COMMIT,
    }


def test_data_revisions_pin_a_hub_dataset_like_a_model_revision(tmp_path, monkeypatch):
    calls, resolves = _fake_hub(monkeypatch)
    build_dataset(
        "gsm8k", tmp_path / "g.parquet", source="hub", eval_limit=2, train_limit=0, revisions={"gsm8k": "v1.0"}
    )
    assert resolves == ["v1.0"] and calls == [("test", COMMIT)]
    assert io.read_provenance(tmp_path / "g.parquet")["datasets"]["gsm8k"]["revision"] == "v1.0"


def test_a_commit_sha_revision_is_used_as_is_without_asking_the_hub():
    from uqroute.data.sources import resolve_hub_commit

    assert resolve_hub_commit(get_spec("gsm8k"), COMMIT) == COMMIT


def test_the_schema_knows_data_revisions_and_rejects_unknown_dataset_names():
    from uqroute import settings

    config = {"datasets": ["gsm8k"], "models": {"m": {"hub": "org/m"}}, "slms": ["m"], "llms": ["m"]}
    assert settings.validate(config)["data"]["revisions"] == {}
    with pytest.raises(settings.ConfigError, match="data.revisions"):
        settings.validate({**config, "data": {"revisions": {"gsm9k": "main"}}})


def test_a_locked_dataset_whose_files_changed_is_refused(tmp_path):
    slices = tmp_path / "slices"
    shutil.copytree(SLICES, slices)
    spec = get_spec("commonsenseqa")
    locked = {
        "source": "slices",
        "files": {spec.split_file("validation"): _sha(slices / spec.split_file("validation"))},
    }
    build_dataset(
        "commonsenseqa", tmp_path / "a.parquet", source="slices", slices_dir=str(slices), eval_limit=2, locked=locked
    )
    (slices / spec.split_file("validation")).write_bytes((slices / spec.split_file("train")).read_bytes())
    with pytest.raises(
        DatasetError,
        match=r"dataset 'commonsenseqa': slices file tau__commonsense_qa/default/validation.parquet has sha256 .*, the revisions lock",
    ):
        build_dataset(
            "commonsenseqa",
            tmp_path / "b.parquet",
            source="slices",
            slices_dir=str(slices),
            eval_limit=2,
            locked=locked,
        )
    assert not (tmp_path / "b.parquet").exists()
    with pytest.raises(DatasetError, match=r"records data.source 'hub', the config has 'slices'"):
        build_dataset(
            "commonsenseqa",
            tmp_path / "c.parquet",
            source="slices",
            slices_dir=str(slices),
            locked={"source": "hub", "commit": COMMIT},
        )


# ------------------------------------------------------------------ the lock file itself
def _lock(tmp_path, **changes) -> Path:
    lock = {
        "version": 1,
        "models": {
            "slm": {"source": "hub", "hub": "org/slm", "revision": "main", "commit": COMMIT},
            "llm": {"source": "pypi", "sha256": "a" * 64},
        },
        "datasets": {
            "gsm8k": {"source": "hub", "hub": "openai/gsm8k", "config": "main", "revision": None, "commit": "c" * 40}
        },
    }
    lock.update(changes)
    path = tmp_path / "lock.yaml"
    path.write_text(yaml.safe_dump(lock))
    return path


def _config(**data):
    return {
        "datasets": ["gsm8k"],
        "slms": ["slm"],
        "llms": ["llm"],
        "judge": {},
        "models": {
            "slm": {"hub": "org/slm", "revision": "main"},
            "llm": {"pypi": {"packages": ["x==1"], "files": ["x"], "sha256": "a" * 64}},
        },
        "data": {"source": "hub", "revisions": {}, **data},
    }


def test_apply_lock_pins_hub_models_and_datasets_to_the_recorded_commits(tmp_path):
    config = revisions.apply_lock(_config(), revisions.read_lock(_lock(tmp_path)))
    assert config["models"]["slm"]["revision"] == COMMIT
    assert config["data"]["revisions"] == {"gsm8k": "c" * 40}


def test_apply_lock_lists_every_mismatch_naming_the_key(tmp_path):
    config = _config()
    config["models"]["llm"]["pypi"]["sha256"] = "b" * 64
    config["models"]["slm"]["hub"] = "org/other"
    config["datasets"].append("svamp")
    with pytest.raises(RevisionsLockError) as err:
        revisions.apply_lock(config, revisions.read_lock(_lock(tmp_path)))
    message = str(err.value)
    assert "3 problem(s)" in message
    assert "models.slm.hub: 'org/other', the revisions lock records 'org/slm'" in message
    assert f"models.llm.pypi.sha256: {'b' * 64}, the revisions lock records {'a' * 64}" in message
    assert "datasets: 'svamp' is not in the revisions lock" in message


def test_read_lock_refuses_a_lock_without_resolved_revisions(tmp_path):
    bad = _lock(tmp_path, datasets={"gsm8k": {"source": "hub", "hub": "openai/gsm8k", "commit": None}})
    with pytest.raises(RevisionsLockError, match=r"datasets.gsm8k \(hub\) records no `commit`"):
        revisions.read_lock(bad)
    (tmp_path / "x.yaml").write_text("models: {}\n")
    with pytest.raises(RevisionsLockError, match="not a uqroute revisions lock"):
        revisions.read_lock(tmp_path / "x.yaml")


# ------------------------------------------------------------------ through Snakemake
def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(SNAKEMAKE),
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(workdir),
            f"--configfile={workdir / 'config.yaml'}",
            "--cores",
            "1",
            *args,
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def test_a_run_writes_the_lock_and_the_next_run_uses_exactly_it(tmp_path, tiny_model_dir):
    """The real workflow: `revisions_lock` records the model and the slice files; a second run with
    `revisions_lock:` set reproduces the data byte for byte, and refuses a slice file that changed."""
    slices = tmp_path / "slices"
    shutil.copytree(SLICES, slices)
    config = {
        "datasets": ["boolq", "commonsenseqa"],
        "models": {"tiny": {"local_dir": str(tiny_model_dir)}},
        "slms": ["tiny"],
        "llms": ["tiny"],
        "inference": {"hidden_layer": -2},
        "data": {"slices_dir": str(slices), "eval_limit": 4, "train_limit": 2},
    }
    first, second = tmp_path / "first", tmp_path / "second"
    for d in (first, second):
        d.mkdir()
    (first / "config.yaml").write_text(yaml.safe_dump(config))
    proc = _snakemake(first, "results/revisions.lock.yaml")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lock = revisions.read_lock(first / "results" / "revisions.lock.yaml")
    assert lock["models"]["tiny"]["source"] == "local_dir" and len(lock["models"]["tiny"]["sha256"]) == 64
    csqa = get_spec("commonsenseqa").split_file("validation")
    assert lock["datasets"]["commonsenseqa"]["files"][csqa] == _sha(slices / csqa)

    (second / "config.yaml").write_text(
        yaml.safe_dump({**config, "revisions_lock": str(first / "results" / "revisions.lock.yaml")})
    )
    proc = _snakemake(second, "results/data/boolq.parquet", "results/data/commonsenseqa.parquet")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ("boolq", "commonsenseqa"):  # no timestamps: the same bytes, provenance included
        assert (second / f"results/data/{name}.parquet").read_bytes() == (
            first / f"results/data/{name}.parquet"
        ).read_bytes()

    (slices / csqa).write_bytes((slices / get_spec("commonsenseqa").split_file("train")).read_bytes())
    proc = _snakemake(second, "results/data/commonsenseqa.parquet", "--forcerun", "download")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"slices file {csqa} has sha256" in out and "the revisions lock" in out, out[-3000:]


def test_gguf_metadata_on_a_hub_model_is_a_config_error():
    from uqroute import preflight, settings

    config = settings.validate(
        {
            "datasets": ["boolq", "gsm8k"],
            "slms": ["m"],
            "llms": ["m"],
            "models": {"m": {"hub": "org/m", "gguf_metadata": {"name": "x"}}},
        }
    )
    with pytest.raises(settings.ConfigCheckError, match=r"models.m.gguf_metadata: only a `gguf` or `pypi` source"):
        preflight.check(config)

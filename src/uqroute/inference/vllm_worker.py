"""The generation worker of the vLLM engine: run by the vLLM environment's python, it imports only vLLM.

vLLM pins its own torch and transformers, so it lives in an environment of its own (``make
install-vllm``; on a cluster ``envs/vllm.yaml``). :mod:`.vllm_backend` starts this file with that
environment's python (``python vllm_worker.py '<settings JSON>'``) and keeps it for its lifetime:
one ``vllm.LLM`` (the offline engine; vLLM's start-up costs a minute on a CPU) serves every batch.

Protocol (one line each way per batch; vLLM's own output goes to stderr):

* the worker prints ``@@uqroute-vllm ready <json>`` (vLLM's version) once the engine is up;
* the caller writes a line with the path of a JSON file: a list of requests
  ``{"prompt": [token ids], "max_tokens": int, "temperature": float, "seed": int | null}``;
* the worker writes the results next to it (``<path>.out``): per request ``{"token_ids": [...],
  "logprobs": [log-probability of each generated token], "finish_reason": "stop" | "length"}``
  and prints ``@@uqroute-vllm done <path>``.

Every request asks for one completion (``n=1``) with ``logprobs=0`` (the chosen token's own
log-probability, of the raw distribution before temperature), stops at the caller's
``stop_token_ids`` (which are kept in ``token_ids``; the caller strips them) and is seeded
through ``SamplingParams.seed`` where it samples.
"""

import json
import os
import sys

MARK = "@@uqroute-vllm"


def _say(*parts) -> None:
    sys.__stdout__.write(" ".join([MARK, *map(str, parts)]) + "\n")
    sys.__stdout__.flush()


def main() -> None:
    settings = json.loads(sys.argv[1])
    sys.stdout = sys.stderr  # vLLM's prints must not mix with the protocol
    import vllm
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    kw = dict(
        model=settings["model_dir"],
        tokenizer=settings["model_dir"],
        dtype=settings["dtype"],
        seed=settings["seed"],
        max_model_len=settings["max_model_len"],
        tensor_parallel_size=settings["tensor_parallel_size"],
        enable_prefix_caching=True,
        skip_tokenizer_init=False,
    )
    if settings.get("gpu_memory_utilization") is not None:
        kw["gpu_memory_utilization"] = settings["gpu_memory_utilization"]
    if settings.get("enforce_eager"):
        kw["enforce_eager"] = True
    if settings.get("device") == "cpu":
        # vLLM-CPU cannot rewind a CPU torch.Generator ("CPU Generator does not use offset"): a seeded
        # sample whose prompt chunked prefill splits across steps kills the engine. Whole prompts only.
        kw["enable_chunked_prefill"] = False
        kw["max_num_batched_tokens"] = max(int(settings["max_model_len"]), 4096)
    llm = LLM(**kw)
    stop = [int(t) for t in settings["stop_token_ids"]]
    _say("ready", json.dumps({"version": vllm.__version__}))
    for line in sys.stdin:
        path = line.strip()
        if not path:
            continue
        reqs = json.loads(open(path).read())
        params = [
            SamplingParams(
                n=1,
                temperature=float(r["temperature"]),
                max_tokens=int(r["max_tokens"]),
                seed=r.get("seed"),
                logprobs=0,
                stop_token_ids=stop,
                skip_special_tokens=True,
                detokenize=False,
            )
            for r in reqs
        ]
        outs = llm.generate([TokensPrompt(prompt_token_ids=list(r["prompt"])) for r in reqs], params, use_tqdm=False)
        res = []
        for o in outs:
            c = o.outputs[0]
            ids = [int(t) for t in c.token_ids]
            lps = [float(d[t].logprob) for t, d in zip(ids, c.logprobs or [])]
            res.append({"token_ids": ids, "logprobs": lps, "finish_reason": str(c.finish_reason)})
        tmp = path + ".out.tmp"
        with open(tmp, "w") as f:
            json.dump(res, f)
        os.replace(tmp, path + ".out")
        _say("done", path)


if __name__ == "__main__":  # vLLM starts its engine core in a spawned process
    main()

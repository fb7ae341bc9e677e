"""Fault injection: the LLM stage and the judge stage against a real HTTP server that misbehaves, then recovers.

The server (tests/fault_server.py) is a real OpenAI-compatible HTTP server in a thread; nothing
on the client side is mocked. Each test checks, counting on the server side, what was retried,
what was cached, what error the user reads, and that nothing is paid for twice.

The openai client's backoff (0.5 s, doubling) is shortened to 10 ms by the autouse fixture
``fast_backoff``; a ``Retry-After`` header still sets the wait (see the 429 tests).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from fault_server import FaultServer, canonical, is_judge_prompt, judge_reply

from uqroute.data import get_spec
from uqroute.inference import CachedBackend, Generation, run_inference
from uqroute.inference.api import (
    APIConfigError,
    APIReplyError,
    APIRequestError,
    APIUnreachableError,
    OpenAIChatBackend,
    _httpx,
)
from uqroute.io import write_parquet
from uqroute.judge import run_judge
from uqroute.schema import ARTIFACTS

REPO = Path(__file__).resolve().parents[1]
FAKE_KEY = "sk-proj-FAULTS-0123456789abcdefFAKEKEY"
KEY_ENV = "UQROUTE_FAULT_TEST_KEY"
N_ROWS = 4
STAGES = ("llm", "judge")


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    """openai._base_client reads these constants at every retry (exponential backoff from 0.5 s, at most 8 s)."""
    import openai._base_client as base

    monkeypatch.setattr(base, "INITIAL_RETRY_DELAY", 0.01)
    monkeypatch.setattr(base, "MAX_RETRY_DELAY", 0.05)


@pytest.fixture
def server():
    with FaultServer(hang_s=1.5) as s:
        yield s


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """The persistent API cache ($UQROUTE_CACHE_DIR) and the key in its variable."""
    root = tmp_path / "cache"
    monkeypatch.setenv("UQROUTE_CACHE_DIR", str(root))
    monkeypatch.setenv(KEY_ENV, FAKE_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return root


def spec(server, **api) -> dict:
    """The api block for ``server``; a short ``timeout_s`` only where a test makes the server hang."""
    return {
        "api": {
            "model": server.model,
            "base_url": server.base_url,
            "api_key_env": KEY_ENV,
            "max_retries": 2,
            "timeout_s": 10,
            "concurrency": 1,
            **api,
        }
    }


def timeout_for(fault) -> dict:
    return {"timeout_s": 0.5} if fault == "timeout" else {}


def cached_records(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("*.json")) if "fingerprints" not in p.parts]


# ------------------------------------------------------------------ the two stages


def data_file(tmp_path, dataset: str, n: int = N_ROWS) -> Path:
    spec_ = get_spec(dataset)
    choices = [{"label": l, "text": t} for l, t in zip("ABCD", ["Paris", "Rome", "Oslo", "Bern"])]
    rows = []
    for i in range(n):
        mcq = spec_.task_type == "MCQ"
        rows.append(
            {
                "id": f"{dataset}/{spec_.eval_split}/{i}",
                "dataset": dataset,
                "domain": spec_.domain,
                "task_type": spec_.task_type,
                "split": spec_.eval_split,
                "role": "eval",
                "question": f"Question number {i}?",
                "context": None,
                "choices": choices if mcq else [],
                "answer": "A" if mcq else f"answer {i}",
                "references": ["A"] if mcq else [f"answer {i}"],
                "prompt": f"Question number {i}?" + ("\nA. Paris\nB. Rome\nAnswer with the letter." if mcq else ""),
            }
        )
    path = tmp_path / f"{dataset}.data.parquet"
    if not path.exists():
        write_parquet(pl.DataFrame(rows, schema=ARTIFACTS["data"].polars_schema()), path, "data")
    return path


def generations_file(tmp_path, data: Path) -> Path:
    """An LLM-style generations artifact answering every row of ``data`` (free-form, so every row is judged)."""
    ids = pl.read_parquet(data)["id"].to_list()
    schema = ARTIFACTS["generations"].polars_schema()
    cols = {c: [None] * len(ids) for c in schema}
    cols.update(
        id=ids,
        response=[f"my answer {i}" for i in range(len(ids))],
        parsed_answer=[f"my answer {i}" for i in range(len(ids))],
        tokens=[[]] * len(ids),
        n_prompt_tokens=[5] * len(ids),
        finish_reason=["stop"] * len(ids),
    )
    path = tmp_path / "truthfulqa.gen.parquet"
    if not path.exists():
        write_parquet(pl.DataFrame(cols, schema=schema), path, "generations")
    return path


def run_stage(stage: str, tmp_path, api_spec: dict, tag: str = "out") -> tuple[pl.DataFrame, Path]:
    """Run the LLM stage (run_inference, role llm) or the judge stage (run_judge, api judge); the artifact + its path."""
    if stage == "llm":
        out = tmp_path / f"llm-{tag}.parquet"
        run_inference(
            "served-llm",
            api_spec,
            None,
            str(data_file(tmp_path, "commonsenseqa")),
            str(out),
            None,
            "llm",
            {"shard_size": 2, "max_new_tokens": {"MCQ": 4}},
            0,
        )
        return pl.read_parquet(out), out
    data = data_file(tmp_path, "truthfulqa")
    out = tmp_path / f"judge-{tag}.parquet"
    table = run_judge(
        "served-llm",
        "truthfulqa",
        data,
        generations_file(tmp_path, data),
        out,
        tmp_path / f"agree-{tag}.parquet",
        {"model": "api-judge", "max_new_tokens": 4},
        api_spec,
        None,
        {},
    )
    return table, out


def check_answers(stage: str, table: pl.DataFrame, expected: str = "A") -> None:
    """Every row carries the server's normal reply (``A`` to the MCQ rows, ``Yes`` to the judge prompts)."""
    assert table.height == N_ROWS
    if stage == "llm":
        assert table["response"].to_list() == [expected] * N_ROWS
        assert table["token_logprobs"].to_list() == [[-0.125]] * N_ROWS
    else:
        verdict = {"A": "correct", "B": "incorrect"}[expected]
        assert table["judge_verdict"].to_list() == [verdict] * N_ROWS
        assert table["label_source"].to_list() == ["judge"] * N_ROWS


def no_duplicates(bodies: list[dict]) -> bool:
    keys = [canonical(b) for b in bodies]
    return len(keys) == len(set(keys))


# ------------------------------------------------------------------ one fault, then recovery

TRANSIENT = ["500", "503", "timeout", "drop", "html", "truncated", "no_choices", "null_logprob"]


@pytest.mark.parametrize("fault", TRANSIENT)
@pytest.mark.parametrize("stage", STAGES)
def test_one_fault_is_retried_and_nothing_is_paid_twice(stage, fault, server, cache, tmp_path, caplog):
    server.fail(fault)
    with caplog.at_level(logging.DEBUG):
        table, _ = run_stage(stage, tmp_path, spec(server, **timeout_for(fault)))
    check_answers(stage, table)
    sent = server.sent()
    assert server.faults() == [fault] + [None] * N_ROWS
    assert canonical(sent[0]) == canonical(sent[1])  # the failed request was sent again, at once
    assert len(server.answered()) == N_ROWS and no_duplicates(server.answered())
    records = cached_records(cache)
    assert len(records) == N_ROWS  # one per request, each a valid reply
    assert sorted(canonical(r["request"]) for r in records) == sorted(canonical(b) for b in server.answered())
    assert FAKE_KEY not in caplog.text
    # a rerun is answered from the cache: the server sees nothing
    again, _ = run_stage(stage, tmp_path, spec(server), tag="again")
    assert again.equals(table)
    assert len(server.sent()) == N_ROWS + 1


REASONS = {
    "html": "not JSON",
    "truncated": "not JSON",
    "no_choices": "0 choices, but n=1",
    "null_logprob": "logprob is None",
}


@pytest.mark.parametrize("fault", sorted(REASONS))
@pytest.mark.parametrize("stage", STAGES)
def test_a_server_that_keeps_answering_invalid_replies(stage, fault, server, cache, tmp_path):
    """Retried like a server error, then a clear error; nothing cached; the recovered server is asked again."""
    server.fail_always(fault)
    with pytest.raises(APIReplyError) as err:
        run_stage(stage, tmp_path, spec(server))
    message = str(err.value)
    for part in (
        server.base_url,
        repr(server.model),
        "HTTP 200",
        "after 2 retries",
        "nothing was cached",
        REASONS[fault],
    ):
        assert part in message
    assert FAKE_KEY not in message
    sent = server.sent()
    assert len(sent) == 3 and len({canonical(b) for b in sent}) == 1  # 1 + max_retries tries, then it stopped
    assert cached_records(cache) == []
    assert not list(tmp_path.glob(f"{stage}-out.parquet"))
    server.recover()
    table, _ = run_stage(stage, tmp_path, spec(server))
    check_answers(stage, table)
    assert len(server.answered()) == N_ROWS and no_duplicates(server.answered())


@pytest.mark.parametrize("stage", STAGES)
def test_a_bad_reply_already_in_the_cache_is_reported_and_fetched_again(stage, server, cache, tmp_path, caplog):
    """A cache written by a version that stored replies unchecked: the bad records are named and refetched."""
    table, out = run_stage(stage, tmp_path, spec(server))
    paths = sorted(p for p in cache.rglob("*.json"))
    assert len(paths) == N_ROWS
    bad = {}
    for path, corrupt in zip(paths, ("no_choices", "null_logprob")):
        record = json.loads(path.read_text())
        if corrupt == "no_choices":
            record["response"]["choices"] = []
        else:
            record["response"]["choices"][0]["logprobs"]["content"][0]["logprob"] = None
        path.write_text(json.dumps(record))
        bad[path.stem] = record["request"]
    out.unlink()
    with caplog.at_level(logging.WARNING, logger="uqroute"):
        again, _ = run_stage(stage, tmp_path, spec(server), tag="again")
    assert again.equals(table)
    for key in bad:
        assert key in caplog.text
    assert "0 choices" in caplog.text and "logprob is None" in caplog.text
    refetched = server.sent()[N_ROWS:]
    assert sorted(canonical(b) for b in refetched) == sorted(canonical(b) for b in bad.values())
    assert len(cached_records(cache)) == N_ROWS
    # now repaired: a third run sends nothing
    run_stage(stage, tmp_path, spec(server), tag="third")
    assert len(server.sent()) == N_ROWS + 2


def test_fewer_choices_than_n_is_retried(server, cache, tmp_path):
    b = OpenAIChatBackend(spec(server), cache_dir=cache / "n3")
    server.fail("short_choices")
    (gens,) = b.generate([[{"role": "user", "content": "hi"}]], max_new_tokens=4, temperature=1.0, n=3, seed=1)
    assert [g.text for g in gens] == ["A 0", "A 1", "A 2"]
    assert server.faults() == ["short_choices", None]
    server.fail_always("short_choices")
    with pytest.raises(APIReplyError, match=r"2 choices, but n=3"):
        b.generate([[{"role": "user", "content": "other"}]], max_new_tokens=4, temperature=1.0, n=3, seed=1)
    assert len(cached_records(cache)) == 1


# ------------------------------------------------------------------ errors that outlast the retries


def test_retry_after_is_honoured(server, cache, tmp_path):
    server.fail(("429", 1))
    start = time.monotonic()
    table, _ = run_stage("llm", tmp_path, spec(server))
    assert time.monotonic() - start >= 0.95  # the backoff itself is 10 ms here: only Retry-After explains 1 s
    check_answers("llm", table)
    assert server.faults() == ["429"] + [None] * N_ROWS


@pytest.mark.parametrize("stage", STAGES)
def test_a_429_with_a_long_retry_after_is_reported_as_not_retried(stage, server, cache, tmp_path):
    server.fail_always(("429", 3600))
    with pytest.raises(APIRequestError) as err:
        run_stage(stage, tmp_path, spec(server))
    message = str(err.value)
    assert "with HTTP 429, not retried (the server asked to wait 3600 s (Retry-After)" in message
    assert "after" not in message  # not "after retries"
    assert len(server.sent()) == 1 and cached_records(cache) == []


@pytest.mark.parametrize(
    "fault, error, says",
    [
        ("500", APIRequestError, "HTTP 500, after 2 retries"),
        ("503", APIRequestError, "HTTP 503, after 2 retries"),
        ("timeout", APIUnreachableError, "timed out (timeout 0.5 s), after 2 retries"),
        ("drop", APIUnreachableError, "connection failed, after 2 retries"),
    ],
)
@pytest.mark.parametrize("stage", STAGES)
def test_errors_that_outlast_the_retries_name_server_model_and_tries(
    stage, fault, error, says, server, cache, tmp_path, caplog
):
    server.fail_always(fault)
    with caplog.at_level(logging.DEBUG), pytest.raises(error) as err:
        run_stage(stage, tmp_path, spec(server, **timeout_for(fault)))
    message = str(err.value)
    assert server.base_url in message and repr(server.model) in message and says in message
    assert FAKE_KEY not in message and FAKE_KEY not in caplog.text
    assert len(server.sent()) == 3 and cached_records(cache) == []


def test_max_retries_zero_says_so(server, cache, tmp_path):
    server.fail_always("500")
    with pytest.raises(APIRequestError, match=r"HTTP 500, not retried \(max_retries is 0\)"):
        run_stage("llm", tmp_path, spec(server, max_retries=0))
    assert len(server.sent()) == 1


@pytest.mark.parametrize("fault", ["drop", "timeout"])
def test_max_retries_zero_is_said_once_when_unreachable(fault, server, cache, tmp_path):
    server.fail_always(fault)
    with pytest.raises(APIUnreachableError) as err:
        run_stage("llm", tmp_path, spec(server, max_retries=0, **timeout_for(fault)))
    message = str(err.value)
    assert "not retried (max_retries is 0): " in message and message.count("max_retries") == 1, message
    assert len(server.sent()) == 1


@pytest.mark.parametrize("status", [401, 503, 200])
def test_a_key_the_server_echoes_is_shown_as_stars(status, server, cache, tmp_path, caplog):
    """A server that puts the bearer key into its reply (an error body, or a token of an invalid reply):
    the error and the log show ``***`` in its place, never the key."""
    server.fail_always(("echo_key", status))
    with caplog.at_level(logging.DEBUG), pytest.raises((APIRequestError, APIReplyError)) as err:
        run_stage("llm", tmp_path, spec(server, max_retries=1))
    assert server.log[0].fault == "echo_key"
    message = str(err.value)
    assert "***" in message and FAKE_KEY not in message, message
    assert FAKE_KEY not in caplog.text
    if status != 401:  # retried: the log's warnings name each try's reply, redacted too
        assert len(server.sent()) == 2
    assert cached_records(cache) == []


def test_a_failure_stops_sending_and_keeps_what_was_answered(server, cache, tmp_path):
    """The first request that fails for good stops the run; answered requests stay cached, the rerun pays the rest."""
    server.fail("drop", "drop", "drop")  # the first request fails 3 times (max_retries 2)
    with pytest.raises(APIUnreachableError):
        run_stage("llm", tmp_path, spec(server))
    assert len(server.sent()) == 3 and cached_records(cache) == []
    table, _ = run_stage("llm", tmp_path, spec(server))
    check_answers("llm", table)
    assert len(server.answered()) == N_ROWS and no_duplicates(server.answered())


def test_a_content_filtered_reply_is_stored_as_such_and_counted(server, cache, tmp_path):
    """``finish_reason: content_filter`` is a valid reply: cached once, stored as ``content_filter``
    (not ``stop``), read back so from the cache, and counted in the judge stage's ``quality`` table."""
    server.fail("content_filter")
    table, out = run_stage("llm", tmp_path, spec(server))
    assert table["finish_reason"].to_list() == ["content_filter"] + ["stop"] * (N_ROWS - 1)
    assert table["response"][0] == "" and table["parsed_answer"][0] is None
    out.unlink()
    again, _ = run_stage("llm", tmp_path, spec(server))  # from the cache: nothing sent
    assert again.equals(table) and len(server.sent()) == N_ROWS
    data = data_file(tmp_path, "commonsenseqa")
    quality_path = tmp_path / "quality.parquet"
    run_judge(
        "served-llm",
        "commonsenseqa",
        data,
        out,
        tmp_path / "correct.parquet",
        tmp_path / "agree.parquet",
        {"model": None, "quality_warn_fraction": 0.2},
        None,
        None,
        {},
        quality_path=quality_path,
    )
    q = pl.read_parquet(quality_path).row(0, named=True)
    assert q["n_content_filtered"] == 1 and q["n_truncated"] == 0
    assert any(
        "1 of 4 (25%) greedy replies were stopped by the API provider's content filter" in w for w in q["warnings"]
    )


# ------------------------------------------------------------------ where requests and keys go


@pytest.mark.parametrize("stage", STAGES)
def test_another_server_is_asked_not_answered_from_the_cache(stage, cache, tmp_path):
    """The cache key includes the endpoint: a second server (other port, other weights) gets its own requests."""
    with (
        FaultServer() as first,
        FaultServer(reply=lambda body: judge_reply(body, False) if is_judge_prompt(body) else "B") as other,
    ):
        table, out = run_stage(stage, tmp_path, spec(first))
        check_answers(stage, table, "A")
        out.unlink()
        table2, out2 = run_stage(stage, tmp_path, spec(other), tag="other")
        check_answers(stage, table2, "B")
        assert len(other.sent()) == N_ROWS
        out2.unlink()
        again, _ = run_stage(stage, tmp_path, spec(first), tag="first-again")  # the first server's answers stay
        assert again.equals(table) and len(first.sent()) == N_ROWS
        assert {r["endpoint"] for r in cached_records(cache)} == {first.base_url, other.base_url}  # already normal
    assert len(cached_records(cache)) == 2 * N_ROWS


def test_base_url_null_goes_to_openai_not_to_OPENAI_BASE_URL(server, cache, monkeypatch, caplog):
    """With base_url null the key goes to https://api.openai.com/v1 only, whatever $OPENAI_BASE_URL says.

    Nothing leaves the machine: a request hook on the backend's HTTP client records where the
    request would go and stops it.
    """
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    with caplog.at_level(logging.WARNING):
        b = OpenAIChatBackend(spec(server, base_url=None, max_retries=0), cache_dir=cache / "official")
    assert "OPENAI_BASE_URL is set in the environment and ignored" in caplog.text
    assert b.endpoint == "https://api.openai.com:443/v1" and b.where == "https://api.openai.com/v1 (the OpenAI API)"
    seen = []

    def stop(request):
        seen.append((str(request.url), request.headers.get("authorization")))
        raise _httpx().ConnectError("stopped by the test", request=request)

    b._http.event_hooks["request"].append(stop)
    with pytest.raises(APIUnreachableError, match=r"https://api\.openai\.com/v1 \(the OpenAI API\)"):
        b.generate([[{"role": "user", "content": "hi"}]], max_new_tokens=2)
    assert seen == [("https://api.openai.com/v1/chat/completions", f"Bearer {FAKE_KEY}")]
    assert server.sent() == []  # the server named by OPENAI_BASE_URL never saw the key


def test_redirects_are_not_followed(cache, tmp_path):
    """A server that redirects elsewhere: the key is not sent on; the error says why."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    with FaultServer() as target:

        class Redirect(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(307)
                self.send_header("Location", target.base_url + "/chat/completions")
                self.send_header("Content-Length", "0")
                self.end_headers()

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            api = {
                "model": target.model,
                "base_url": f"http://127.0.0.1:{httpd.server_address[1]}/v1",
                "api_key_env": KEY_ENV,
                "max_retries": 0,
                "timeout_s": 2,
            }
            with pytest.raises(APIRequestError, match="HTTP 307.*redirects are not followed"):
                OpenAIChatBackend({"api": api}, cache_dir=cache / "r").generate(
                    [[{"role": "user", "content": "hi"}]], max_new_tokens=2
                )
        finally:
            httpd.shutdown()
            httpd.server_close()
        assert target.sent() == []


PASTED = [FAKE_KEY, "sk_live_4eC39HqLyjWDarjtT1zdp7dcXYZ", "ghp_AbCdEf0123456789AbCdEf0123456789abcd"]


@pytest.mark.parametrize("pasted", PASTED)
@pytest.mark.parametrize("stage", STAGES)
def test_a_key_pasted_as_api_key_env_is_never_echoed(stage, pasted, server, cache, tmp_path, caplog, monkeypatch):
    """api_key_env must name a variable; a pasted key is refused (or, if it happens to be a valid name, never shown)."""
    monkeypatch.delenv(pasted, raising=False)
    api = spec(server, api_key_env=pasted, base_url="https://api.example.invalid/v1")
    with caplog.at_level(logging.DEBUG), pytest.raises(APIConfigError) as err:
        run_stage(stage, tmp_path, api)
    message = str(err.value)
    assert pasted not in message and pasted not in caplog.text
    assert pasted[:12] not in message and pasted[-12:] not in message
    assert "api_key_env" in message
    assert server.sent() == []


# ------------------------------------------------------------------ progress and counts


def test_progress_bar_and_counts_of_cached_and_new_requests(server, cache, capsys, caplog):
    convs = [[{"role": "user", "content": f"question {i}"}] for i in range(6)]
    with caplog.at_level(logging.INFO, logger="uqroute"):
        with OpenAIChatBackend(spec(server, concurrency=3), cache_dir=cache / "p", name="served") as b:
            b.generate(convs[:4], max_new_tokens=2)
            b.generate(convs, max_new_tokens=2)
            assert b.stats == {"cache_hits": 4, "requests": 6}
    assert "served: 4 requests: 0 from the cache, 4 new" in caplog.text
    assert "served: 6 requests: 4 from the cache, 2 new" in caplog.text
    assert "served: 10 requests in all: 4 from the cache, 6 new" in caplog.text
    err = capsys.readouterr().err
    assert "served: API requests" in err and "0/4" in err and "4/6" in err  # cached requests count as done at once
    assert len(server.sent()) == 6


def test_judge_stage_logs_cached_and_new_counts(server, cache, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="uqroute"):
        run_stage("judge", tmp_path, spec(server))
        run_stage("judge", tmp_path, spec(server), tag="again")
    assert f"{N_ROWS} requests: 0 from the cache, {N_ROWS} new" in caplog.text
    assert f"{N_ROWS} requests: {N_ROWS} from the cache, 0 new" in caplog.text


# ------------------------------------------------------------------ CachedBackend (local models)


class Scripted:
    """A ChatBackend answering from a script; ``bad`` conversations (by content) get an invalid generation."""

    name = "scripted"

    def __init__(self, bad=()):
        self.bad, self.calls = set(bad), []

    def generate(self, conversations, *, max_new_tokens, temperature=0.0, n=1, seed=None, top_logprobs=0):
        self.calls.append([c[-1]["content"] for c in conversations])
        out = []
        for c in conversations:
            text = c[-1]["content"]
            lps = [None] if text in self.bad else [-0.5]
            out.append([Generation(text=f"re: {text}", tokens=["re"], token_logprobs=lps) for _ in range(n)])
        return out

    def close(self):
        pass


def test_cached_backend_checks_before_storing_and_after_reading(tmp_path, caplog, capsys):
    convs = [[{"role": "user", "content": q}] for q in ("a", "b", "c")]
    inner = Scripted(bad={"b"})
    cb = CachedBackend(inner, tmp_path / "c", {"model_sha256": "x"}, name="local-judge")
    with pytest.raises(RuntimeError, match=r"conversation 1: generation 0: token_logprobs\[0\] is None"):
        cb.generate(convs, max_new_tokens=4)
    assert len(list((tmp_path / "c").rglob("*.json"))) == 2  # the valid ones are kept, the invalid one is not
    inner.bad.clear()
    with caplog.at_level(logging.INFO, logger="uqroute"):
        got = cb.generate(convs, max_new_tokens=4)
    assert inner.calls[-1] == ["b"] and [g[0].text for g in got] == ["re: a", "re: b", "re: c"]
    assert "local-judge: 3 conversations: 2 from the cache, 1 generated" in caplog.text
    assert "local-judge: cached + generated" in capsys.readouterr().err
    # a bad record on disk is named (key and file) and computed again
    path = next(p for p in (tmp_path / "c").rglob("*.json"))
    record = json.loads(path.read_text())
    record["generations"][0]["token_logprobs"] = [None]
    path.write_text(json.dumps(record))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="uqroute"):
        again = cb.generate(convs, max_new_tokens=4)
    assert path.stem in caplog.text and str(path) in caplog.text and "token_logprobs[0] is None" in caplog.text
    assert len(inner.calls[-1]) == 1 and again == got
    # too few generations for n
    short = CachedBackend(
        type("Short", (Scripted,), {"generate": lambda self, c, **k: [[] for _ in c]})(), tmp_path / "s", {"m": 1}
    )
    with pytest.raises(RuntimeError, match="0 generations where n=1"):
        short.generate(convs[:1], max_new_tokens=2)
    assert not list((tmp_path / "s").rglob("*.json"))


# ------------------------------------------------------------------ kill -9 and Ctrl-C during API inference

CHILD = """
import json, logging, sys
logging.basicConfig(level=logging.INFO)
from uqroute.inference import run_inference
run_inference(**json.loads(sys.argv[1]))
"""


def _interrupt_setup(tmp_path, server, n=16):
    data = data_file(tmp_path, "commonsenseqa", n=n)
    api = spec(server, concurrency=2)
    cfg = {"shard_size": n, "max_new_tokens": {"MCQ": 4}}
    args = dict(
        model="served-llm",
        spec=api,
        model_dir=None,
        data_path=str(data),
        out_path=str(tmp_path / "out.parquet"),
        hidden_path=None,
        role="llm",
        cfg=cfg,
        seed=0,
    )
    return args


def _child(args, cache: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "UQROUTE_CACHE_DIR": str(cache),
        KEY_ENV: FAKE_KEY,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(predicate, timeout=60.0):
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_interrupted_api_inference_keeps_finished_requests_and_the_rerun_pays_only_the_rest(
    how, tmp_path, cache, monkeypatch
):
    n = 16
    with FaultServer(delay_s=0.15) as server:
        args = _interrupt_setup(tmp_path, server, n)
        # the reference: an uninterrupted run with its own cache
        ref_args = {**args, "out_path": str(tmp_path / "ref.parquet")}
        monkeypatch.setenv("UQROUTE_CACHE_DIR", str(tmp_path / "ref-cache"))
        run_inference(**ref_args)
        monkeypatch.setenv("UQROUTE_CACHE_DIR", str(cache))
        reference = pl.read_parquet(ref_args["out_path"])
        server.log.clear()

        proc = _child(args, cache)
        _wait_for(lambda: len(server.answered()) >= 4)
        proc.send_signal(getattr(signal, how))
        output, _ = proc.communicate(timeout=60)
        assert proc.returncode != 0
        time.sleep(0.5)  # nothing arrives after the process is gone
        sent_by_first = [canonical(b) for b in server.answered()]
        assert len(sent_by_first) < n, "the interrupted run sent every request"
        cached = {canonical(r["request"]) for r in cached_records(cache)}
        assert cached <= set(sent_by_first) and len(cached) >= 2
        assert len(set(sent_by_first) - cached) <= 2  # at most the requests in flight at kill -9 are lost
        if how == "SIGINT":
            # Ctrl-C: queued requests are not sent; the ones in flight finish and are cached
            assert "KeyboardInterrupt" in output and "queued requests are not sent" in output
            assert cached == set(sent_by_first)
        assert not Path(args["out_path"]).exists()

        run_inference(**args)  # the rerun, in this process
        rerun = [canonical(b) for b in server.answered()][len(sent_by_first) :]
        assert not set(rerun) & cached  # nothing cached is paid for again
        assert len(rerun) == n - len(cached) and len(set(rerun)) == len(rerun)
        assert pl.read_parquet(args["out_path"]).equals(reference)

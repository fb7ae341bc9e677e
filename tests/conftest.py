"""Shared fixtures: a tiny random chat model (fast) and the real converted SmolLM2 (slow).

In CI a skipped test is a failure: when the ``CI`` environment variable is set (``.ci/run`` sets
it), a run in which any test was skipped ends with a non-zero exit status and a summary naming
every skipped test and its reason, so that a missing SLURM cluster, vLLM server, datasets mirror
or oneDNN build cannot pass unnoticed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytest_plugins = ["pytester"]  # tests/test_ci.py runs inner pytest sessions


def in_ci() -> bool:
    """True when the ``CI`` environment variable is set to something other than empty/0/false/no."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


_SKIPPED: list[tuple[str, str]] = []


def _record_skip(report) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _SKIPPED.append((report.nodeid, reason.removeprefix("Skipped: ")))


def pytest_runtest_logreport(report):
    _record_skip(report)


def pytest_collectreport(report):  # a module skipped as a whole (pytest.skip(allow_module_level=True))
    _record_skip(report)


def pytest_sessionfinish(session, exitstatus):
    if in_ci() and _SKIPPED and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if in_ci() and _SKIPPED:
        terminalreporter.section("skipped tests fail the run in CI", sep="=", red=True, bold=True)
        terminalreporter.line(
            f"CI is set ({os.environ.get('CI')!r}): {len(_SKIPPED)} skipped test(s) count as failures. "
            "Provide what they need (scripts/slurm-up.sh, make install-vllm, ../shared/datasets) or fix the skip."
        )
        for nodeid, reason in _SKIPPED:
            terminalreporter.line(f"SKIPPED IN CI {nodeid}: {reason}", red=True)


CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = [
    "True False True False true false yes no",
    "The answer is A. The answer is B. Answer: 42. Confidence: 90%",
    "Question: What is the capital of France? Options: A. Paris B. Rome C. Oslo D. Bern",
    "Solve the following math problem. Reason briefly, then give the final answer on its own last line.",
    "How confident are you that your answer is correct? Reply with a number from 0 to 100 only.",
    "Is the proposed answer True or False? Answer with True or False only.",
]


def build_tiny_tokenizer():
    """A small byte-level BPE tokenizer with ChatML special tokens, trained offline in milliseconds."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 20, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny_model_dir(path: Path, *, n_layers: int = 4, seed: int = 0) -> Path:
    """Save a tiny randomly initialised LlamaForCausalLM + the tiny tokenizer to ``path``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # a spikier output distribution than the default init, so greedy ≠ uniform noise
        model.lm_head.weight.normal_(0, 0.6)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama chat model (4 layers, hidden 32, ChatML template), saved once per session."""
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-model") / "tiny")


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory) -> Path:
    """The real SmolLM2-135M-Instruct, fetched with ``fetch_model`` from config/config.yaml's spec.

    The conversion is cached under ``$UQROUTE_CACHE`` (default ~/.cache/uqroute), so only the
    first run on a machine pays for it (~40–80 s); later runs hardlink the cached files.
    """
    import yaml

    from uqroute.models import fetch_model

    spec = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["models"]["smollm2-135m"]
    return fetch_model("smollm2-135m", spec, tmp_path_factory.mktemp("models") / "smollm2-135m")

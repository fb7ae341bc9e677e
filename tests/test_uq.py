"""UQ methods on hand-built frames with known answers, and the `uq` artifact of run_uq."""

from __future__ import annotations

import math
import re

import numpy as np
import polars as pl
import pytest

from uqroute.io import ArtifactInputError, write_parquet
from uqroute.schema import ARTIFACTS, check_frame
from uqroute.uq import (
    METHODS,
    UnknownMethodError,
    UQInputError,
    eccentricity_uncertainty,
    eigv_uncertainty,
    jaccard_matrix,
    normalize_answer,
    run_uq,
    score_frame,
)

CONFIG_METHODS = [
    "avg_token_prob",
    "perplexity",
    "ptrue",
    "jaccard_degree",
    "verbal_1s",
    "verbal_2s",
    "trained_probe",
    "ood_probe",
    "mean_token_entropy",
    "max_token_entropy",
    "eccentricity",
    "eigv",
    "num_sets",
]


def frame(**cols) -> pl.DataFrame:
    """A joined frame with just the given columns (plus ids)."""
    n = len(next(iter(cols.values())))
    schema = {
        "token_logprobs": pl.List(pl.Float64),
        "token_entropies": pl.List(pl.Float64),
        "samples": pl.List(pl.Utf8),
        "sample_answers": pl.List(pl.Utf8),
    }
    return pl.DataFrame(
        {"id": [f"d/test/{i}" for i in range(n)], **cols},
        schema_overrides={k: v for k, v in schema.items() if k in cols},
    )


def run(name, f):
    return METHODS[name](f)


# ------------------------------------------------------------------ token probabilities
def test_avg_token_prob_uses_option_prob_for_mcq_tf_and_mean_prob_for_ff():
    lp = [math.log(0.5), math.log(0.25)]
    f = frame(task_type=["MCQ", "TF", "FF", "MCQ"], option_prob=[0.9, 0.7, None, None], token_logprobs=[lp, lp, lp, lp])
    out = run("avg_token_prob", f)
    # MCQ/TF: the option token's probability; FF (and MCQ without an option token): mean of exp(logp)
    np.testing.assert_allclose(out, [0.9, 0.7, 0.375, 0.375])


def test_perplexity_of_known_logprobs():
    f = frame(token_logprobs=[[math.log(0.5)] * 4, [math.log(0.5), math.log(0.125)], [], None])
    out = run("perplexity", f)
    # PPL = exp(-mean ln p): 2 and 4; confidence = 1/PPL
    np.testing.assert_allclose(out[:2], [0.5, 0.25])
    assert np.isnan(out[2]) and np.isnan(out[3])


def test_perplexity_is_the_mean_of_the_log_probs_not_their_median():
    """Skewed token lists (three and five distinct values) where the mean, the median and the min of ln p differ."""
    lps = [[math.log(0.5), math.log(0.5), math.log(0.125)], [math.log(p) for p in (0.9, 0.8, 0.5, 0.1, 0.01)]]
    out = run("perplexity", frame(token_logprobs=lps))
    want = [2 ** (-5 / 3), (0.9 * 0.8 * 0.5 * 0.1 * 0.01) ** (1 / 5)]  # exp(mean ln p): the geometric mean
    np.testing.assert_allclose(out, want, rtol=1e-12)
    assert out[0] != pytest.approx(0.5) and out[1] != pytest.approx(0.5)  # the median token's probability


def test_token_lists_skip_null_entries():
    f = frame(token_logprobs=[[math.log(0.5), None, math.log(0.5)]])
    assert run("perplexity", f)[0] == pytest.approx(0.5)
    assert run("min_token_prob", f)[0] == pytest.approx(0.5)


def test_min_token_prob_and_sequence_logprob():
    f = frame(token_logprobs=[[math.log(0.9), math.log(0.1)]])
    assert run("min_token_prob", f)[0] == pytest.approx(0.1)
    assert run("sequence_logprob", f)[0] == pytest.approx(math.log(0.09))


def test_entropy_methods_are_negated_so_lower_entropy_is_more_confident():
    f = frame(token_entropies=[[0.1, 0.3], [2.0, 0.0], None])
    mean, mx = run("mean_token_entropy", f), run("max_token_entropy", f)
    np.testing.assert_allclose(mean[:2], [-0.2, -1.0])
    np.testing.assert_allclose(mx[:2], [-0.3, -2.0])
    assert mean[0] > mean[1] and mx[0] > mx[1]
    assert np.isnan(mean[2]) and np.isnan(mx[2])


TOKEN_METHODS = (
    "avg_token_prob",
    "perplexity",
    "min_token_prob",
    "sequence_logprob",
    "mean_token_entropy",
    "max_token_entropy",
)


def test_token_methods_score_only_the_final_answer_after_a_trace():
    """A reasoning reply: ``<think>`` trace, then the answer. With ``answer_start`` (where the final answer starts)
    the token methods see only the answer's tokens; without the column, every token (old artifacts)."""
    from uqroute.parsing import answer_start

    tokens = [
        "<think>",
        "\n",
        "Hmm",
        ",",
        " maybe",
        " A",
        "?",
        "\n",
        "</think>",
        "\n\n",
        "The",
        " answer",
        " is",
        " B",
        ".",
    ]
    start = answer_start(tokens)
    assert tokens[start:] == ["The", " answer", " is", " B", "."]
    trace_p, answer_p = 0.1, 0.8  # an uncertain trace, a confident answer
    lp = [math.log(trace_p)] * start + [math.log(answer_p)] * (len(tokens) - start)
    ent = [3.0] * start + [0.5] * (len(tokens) - start)
    base = dict(task_type=["FF"], option_prob=[None], token_logprobs=[lp], token_entropies=[ent])
    with_start = frame(**base, answer_start=[start])
    n_ans = len(tokens) - start
    expected = {
        "avg_token_prob": answer_p,
        "perplexity": answer_p,
        "min_token_prob": answer_p,
        "sequence_logprob": n_ans * math.log(answer_p),
        "mean_token_entropy": -0.5,
        "max_token_entropy": -0.5,
    }
    for name in TOKEN_METHODS:
        np.testing.assert_allclose(run(name, with_start), [expected[name]], err_msg=name)
    # without the column: the trace is scored too (the old behaviour, kept for old artifacts)
    old = frame(**base)
    assert run("min_token_prob", old)[0] == pytest.approx(trace_p)
    assert run("max_token_entropy", old)[0] == pytest.approx(-3.0)
    assert run("sequence_logprob", old)[0] == pytest.approx(start * math.log(trace_p) + n_ans * math.log(answer_p))


def test_token_methods_on_degenerate_answer_starts():
    lp = [math.log(0.5), math.log(0.25)]
    f = frame(
        id=["d/test/0", "d/test/1", "d/test/2"],
        task_type=["FF"] * 3,
        option_prob=[None] * 3,
        token_logprobs=[lp, lp, lp],
        token_entropies=[[1.0, 2.0]] * 3,
        answer_start=[0, 2, None],
    )
    for name in TOKEN_METHODS:
        out = run(name, f)
        assert not np.isnan(out[0]) and out[0] == pytest.approx(out[2]), name  # 0 and null: every token
        assert np.isnan(out[1]), name  # a trace with no answer after it: nothing to score
    bad = frame(id=["d/test/7"], token_logprobs=[lp], answer_start=[3])
    with pytest.raises(ValueError, match="answer_start = 3 of row 'd/test/7'"):
        run("perplexity", bad)


def test_column_methods_pass_values_and_keep_nulls():
    f = frame(
        ptrue=[0.8, None],
        verbal_1s_confidence=[None, 0.9],
        verbal_2s_confidence=[0.3, None],
        trained_probe=[0.1, 0.2],
        ood_probe=[0.6, 0.4],
    )
    np.testing.assert_equal(run("ptrue", f), [0.8, np.nan])
    np.testing.assert_equal(run("verbal_1s", f), [np.nan, 0.9])
    np.testing.assert_equal(run("verbal_2s", f), [0.3, np.nan])
    np.testing.assert_equal(run("trained_probe", f), [0.1, 0.2])
    np.testing.assert_equal(run("ood_probe", f), [0.6, 0.4])


# ------------------------------------------------------------------ consistency
SAME = ["The answer is 42"] * 5
DIFF = ["alpha", "beta", "gamma", "delta", "epsilon"]
SOME = ["the answer is 42", "the answer is 42", "the answer is 41", "it is 42", "no idea"]


def test_jaccard_matrix_known_values():
    w = jaccard_matrix(["a b", "b c", "", ""])
    assert w[0, 1] == pytest.approx(1 / 3)
    assert w[2, 3] == 1.0 and w[0, 2] == 0.0
    np.testing.assert_array_equal(np.diag(w), 1.0)
    np.testing.assert_array_equal(w, w.T)


def test_jaccard_ignores_case_and_think_blocks():
    w = jaccard_matrix(["<think>long reasoning</think> Paris", "paris", "reasoning only</think>Paris"])
    assert w[0, 1] == 1.0 and w[0, 2] == 1.0
    # samples cut off while reasoning are compared by their reasoning, not as identical empty replies
    w = jaccard_matrix(["<think>first we add", "<think>let me see"])
    assert w[0, 1] == 0.0


def test_jaccard_degree_is_a_confidence():
    """Lin et al.'s U_Deg = trace(mI − D)/m² is an uncertainty; we report C = 1 − U_Deg = ΣW/m²."""
    f = frame(samples=[SAME, SOME, DIFF, None])
    out = run("jaccard_degree", f)
    assert out[0] == 1.0  # identical samples: fully confident
    assert out[2] == pytest.approx(1 / 5)  # no shared words: W = I, ΣW/m² = m/m² = 1/m
    assert out[0] > out[1] > out[2]
    assert np.isnan(out[3])
    w = jaccard_matrix(SOME)
    m = len(SOME)
    u_deg = np.trace(m * np.eye(m) - np.diag(w.sum(1))) / m**2
    assert out[1] == pytest.approx(1 - u_deg)


def test_eigv_and_eccentricity_extremes_and_ordering():
    f = frame(samples=[SAME, SOME, DIFF])
    eig, ecc = run("eigv", f), run("eccentricity", f)
    np.testing.assert_allclose(eig[[0, 2]], [-1.0, -5.0], atol=1e-9)  # one set vs m sets
    np.testing.assert_allclose(ecc[[0, 2]], [0.0, -2.0], atol=1e-9)  # 0 vs −√(m−1)
    assert eig[0] > eig[1] > eig[2]
    assert ecc[0] > ecc[1] > ecc[2]


def test_graph_uncertainties_are_basis_invariant_under_permutation():
    w = jaccard_matrix(SOME)
    p = np.random.default_rng(0).permutation(len(SOME))
    assert eigv_uncertainty(w) == pytest.approx(eigv_uncertainty(w[p][:, p]))
    assert eccentricity_uncertainty(w) == pytest.approx(eccentricity_uncertainty(w[p][:, p]))


def test_num_sets_and_sample_agreement():
    f = frame(
        parsed_answer=["42", "42", None, "B"],
        sample_answers=[["42", "42.0", "1,000", "1000", None], ["42"] * 5, ["7", "7", None, None, "8"], None],
    )
    sets = run("num_sets", f)
    # row 0: {42, 1000} + one unparsable = 3 sets; row 1: 1; row 2: {7, 8} + two unparsable = 4
    np.testing.assert_equal(sets, [-3.0, -1.0, -4.0, np.nan])
    agree = run("sample_agreement", f)
    np.testing.assert_equal(agree, [0.4, 1.0, 0.0, np.nan])


def test_normalize_answer():
    assert normalize_answer("  B ") == normalize_answer("b")
    assert normalize_answer("1,000") == normalize_answer("1000.0")
    assert normalize_answer(None) is None
    assert normalize_answer("nan") == "nan"


# ------------------------------------------------------------------ registry
def test_registry_covers_config_methods_with_sources_and_columns():
    for name in CONFIG_METHODS:
        assert name in METHODS
    for m in METHODS.values():
        assert m.source and m.columns and m.family in {"token_probability", "consistency", "verbalized", "probe"}
        assert m.fn.__doc__, m.name


def test_unknown_method_lists_known_ones():
    with pytest.raises(UnknownMethodError, match="unknown UQ method.*'nope'.*known methods.*perplexity"):
        score_frame(frame(token_logprobs=[[0.0]]), ["perplexity", "nope"])


def test_missing_column_names_method_and_column():
    with pytest.raises(ValueError, match="'ptrue' needs columns \\['ptrue'\\]"):
        score_frame(frame(token_logprobs=[[0.0]]), ["ptrue"])


# ------------------------------------------------------------------ run_uq end to end
def data_frame(ids_roles, task_type="MCQ") -> pl.DataFrame:
    n = len(ids_roles)
    return pl.DataFrame(
        {
            "id": [i for i, _ in ids_roles],
            "dataset": ["toy"] * n,
            "domain": ["commonsense"] * n,
            "task_type": [task_type] * n,
            "split": ["test"] * n,
            "role": [r for _, r in ids_roles],
            "question": ["q"] * n,
            "context": [None] * n,
            "choices": [[{"label": "A", "text": "x"}, {"label": "B", "text": "y"}]] * n,
            "answer": ["A"] * n,
            "references": [["A"]] * n,
            "prompt": ["p"] * n,
        },
        schema=ARTIFACTS["data"].polars_schema(),
    )


def generations_frame(ids, rng) -> pl.DataFrame:
    n = len(ids)
    return pl.DataFrame(
        {
            "id": ids,
            "response": ["A"] * n,
            "parsed_answer": ["A"] * n,
            "tokens": [["A", "."]] * n,
            "token_logprobs": [list(np.log(rng.uniform(0.1, 1, 2))) for _ in ids],
            "token_entropies": [list(rng.uniform(0, 2, 2)) for _ in ids],
            "answer_start": [0] * n,
            "option_prob": list(rng.uniform(0, 1, n)),
            "n_prompt_tokens": [10] * n,
            "finish_reason": ["stop"] * n,
            "samples": [list(rng.choice(["A", "B", "A b"], 5)) for _ in ids],
            "sample_answers": [list(rng.choice(["A", "B"], 5)) for _ in ids],
            "samples_truncated": [0] * n,
            "ptrue": list(rng.uniform(0, 1, n)),
            "verbal_1s_response": ["A, 80%"] * n,
            "verbal_1s_answer": ["A"] * n,
            "verbal_1s_confidence": [None if i % 3 == 0 else 0.8 for i in range(n)],
            "verbal_1s_finish_reason": ["stop"] * n,
            "verbal_2s_response": ["90%"] * n,
            "verbal_2s_confidence": [0.9] * n,
            "verbal_2s_finish_reason": ["stop"] * n,
        },
        schema=ARTIFACTS["generations"].polars_schema(),
    )


@pytest.fixture()
def artifacts(tmp_path):
    rng = np.random.default_rng(0)
    rows = [(f"toy/test/{i}", "eval") for i in range(6)] + [(f"toy/train/{i}", "train") for i in range(3)]
    data = data_frame(rows)
    gens = generations_frame(data["id"].to_list()[::-1], rng)  # different order than data
    evals = [i for i, r in rows if r == "eval"]
    probes = pl.DataFrame(
        {
            "id": evals,
            "trained_probe": rng.uniform(0, 1, 6),
            "trained_probe_scheme": ["train_split"] * 6,
            "ood_probe": rng.uniform(0, 1, 6),
        }
    )
    paths = {k: tmp_path / f"{k}.parquet" for k in ("data", "generations", "probes")}
    write_parquet(data, paths["data"], "data")
    write_parquet(gens, paths["generations"], "generations")
    write_parquet(probes, paths["probes"], "probes")
    return paths, evals, gens, probes


def test_run_uq_writes_schema_valid_artifact_in_method_order(artifacts, tmp_path, caplog):
    paths, evals, gens, probes = artifacts
    out = tmp_path / "uq" / "toy.parquet"
    methods = list(reversed(CONFIG_METHODS)) + ["sample_agreement", "min_token_prob"]
    with caplog.at_level("WARNING", logger="uqroute.uq"):
        run_uq(paths["data"], paths["generations"], paths["probes"], out, methods)
    assert "verbal_1s could not score 2 of 6 queries" in caplog.text
    table = pl.read_parquet(out)
    check_frame(table, "uq")
    assert table.columns == ["id", *methods]
    assert table["id"].to_list() == evals  # eval rows only, in data order
    assert all(table.schema[m] == pl.Float64 for m in methods)
    # values are joined by id, not by position
    by_id = dict(zip(gens["id"], gens["ptrue"]))
    assert table["ptrue"].to_list() == [by_id[i] for i in evals]
    assert table["trained_probe"].to_list() == probes["trained_probe"].to_list()
    # unparsable verbalized confidences stay null
    null_ids = set(gens.filter(pl.col("verbal_1s_confidence").is_null())["id"])
    assert table["verbal_1s"].is_null().to_list() == [i in null_ids for i in evals]
    assert 0 < table["verbal_1s"].null_count() < table.height


def test_run_uq_without_probe_methods_needs_no_probes_file(artifacts, tmp_path):
    paths, *_ = artifacts
    out = tmp_path / "uq.parquet"
    run_uq(paths["data"], paths["generations"], None, out, ["perplexity"])
    assert pl.read_parquet(out).columns == ["id", "perplexity"]


def test_run_uq_missing_ids_name_the_file_and_write_nothing(artifacts, tmp_path):
    paths, evals, gens, _ = artifacts
    bad = tmp_path / "short.parquet"
    write_parquet(gens.filter(pl.col("id") != evals[2]), bad, "generations")
    out = tmp_path / "uq.parquet"
    with pytest.raises(ArtifactInputError, match=f"uq: generations file {bad} lacks 1 expected id.*{evals[2]}"):
        run_uq(paths["data"], bad, paths["probes"], out, CONFIG_METHODS)
    assert not out.exists()


def test_run_uq_probe_methods_without_probes_file_is_an_input_error(artifacts, tmp_path):
    paths, *_ = artifacts
    with pytest.raises(UQInputError, match=r"methods \['ood_probe'\] need a probes file"):
        run_uq(paths["data"], paths["generations"], None, tmp_path / "uq.parquet", ["perplexity", "ood_probe"])


@pytest.mark.parametrize("which", ["data", "generations", "probes"])
@pytest.mark.parametrize("damage", ["truncate", "garbage", "off_schema"])
def test_run_uq_corrupt_input_names_the_file_and_writes_nothing(artifacts, tmp_path, which, damage):
    """A truncated, garbage or off-schema input artifact: the error names the stage, the artifact and the file."""
    paths, *_ = artifacts
    path = paths[which]
    if damage == "off_schema":  # a column of the wrong type (e.g. written by another tool)
        col = {"data": "question", "generations": "ptrue", "probes": "ood_probe"}[which]
        pl.read_parquet(path).with_columns(pl.lit(1, dtype=pl.Int8).alias(col)).write_parquet(path)
    else:
        blob = path.read_bytes()
        path.write_bytes(blob[: len(blob) // 2] if damage == "truncate" else b"<html>502 Bad Gateway</html>")
    out = tmp_path / "uq.parquet"
    with pytest.raises(ArtifactInputError, match=rf"uq: {which} (file |artifact \()" + re.escape(str(path))):
        run_uq(paths["data"], paths["generations"], paths["probes"], out, CONFIG_METHODS)
    assert not out.exists()


def test_run_uq_unknown_method_fails_before_writing(artifacts, tmp_path):
    paths, *_ = artifacts
    out = tmp_path / "uq.parquet"
    with pytest.raises(UnknownMethodError):
        run_uq(paths["data"], paths["generations"], paths["probes"], out, ["perplexity", "semantic_entropy"])
    assert not out.exists()

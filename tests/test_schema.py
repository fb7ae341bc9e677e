"""The artifact contract: docs match the code, and check_frame catches what it should."""

from pathlib import Path

import polars as pl
import pytest

from uqroute import schema
from uqroute.io import atomic_path, write_parquet

ROOT = Path(__file__).resolve().parents[1]


def test_docs_artifacts_md_is_generated_from_schema():
    committed = (ROOT / "docs" / "artifacts.md").read_text()
    assert committed == schema.render_markdown(), (
        "docs/artifacts.md is stale: run `python -m uqroute.schema > docs/artifacts.md`"
    )


def _agreement_row(**over):
    row = {"model": "m", "dataset": "gsm8k", "n_both": 3, "agreement": 1.0, "cohen_kappa": None}
    row.update(over)
    return pl.DataFrame([row], schema=schema.ARTIFACTS["agreement"].polars_schema())


def test_check_frame_accepts_documented_frame():
    schema.check_frame(_agreement_row(), "agreement")


def test_check_frame_names_missing_column():
    df = _agreement_row().drop("n_both")
    with pytest.raises(schema.ArtifactSchemaError, match="n_both"):
        schema.check_frame(df, "agreement")


def test_check_frame_rejects_wrong_type():
    df = _agreement_row().with_columns(pl.col("n_both").cast(pl.Float64))
    with pytest.raises(schema.ArtifactSchemaError, match="n_both.*Float64"):
        schema.check_frame(df, "agreement")


def test_check_frame_rejects_null_in_required_column_naming_row():
    df = pl.concat([_agreement_row(), _agreement_row(dataset="svamp", model=None)])
    with pytest.raises(schema.ArtifactSchemaError, match="'model' is null in row 1"):
        schema.check_frame(df, "agreement")


def test_check_frame_rejects_duplicate_key_and_undocumented_columns():
    with pytest.raises(schema.ArtifactSchemaError, match="not unique"):
        schema.check_frame(pl.concat([_agreement_row(), _agreement_row()]), "agreement")
    with pytest.raises(schema.ArtifactSchemaError, match="undocumented"):
        schema.check_frame(_agreement_row().with_columns(x=pl.lit(1)), "agreement")


def test_uq_allows_float_method_columns_only():
    ok = pl.DataFrame({"id": ["a"], "perplexity": [0.5]})
    schema.check_frame(ok, "uq")
    with pytest.raises(schema.ArtifactSchemaError, match="perplexity"):
        schema.check_frame(ok.with_columns(pl.col("perplexity").cast(pl.Utf8)), "uq")


def test_write_parquet_leaves_nothing_on_schema_error(tmp_path):
    out = tmp_path / "a.parquet"
    with pytest.raises(schema.ArtifactSchemaError):
        write_parquet(_agreement_row().drop("model"), out, "agreement")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_previous_file_on_failure(tmp_path):
    out = tmp_path / "x.txt"
    out.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(out) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert out.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]


def test_hidden_states_roundtrip_and_bytes_are_deterministic(tmp_path):
    import numpy as np

    from uqroute.io import read_hidden_states, write_hidden_states

    states = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    blobs = []
    for i in range(3):
        p = tmp_path / f"h{i}.safetensors"
        write_hidden_states(p, ["a", "b", "c"], states, layer=23, model="m", dataset="d")
        blobs.append(p.read_bytes())
    assert blobs[0] == blobs[1] == blobs[2]
    ids, arr, meta = read_hidden_states(tmp_path / "h0.safetensors")
    assert ids == ["a", "b", "c"] and arr.dtype == np.float16 and meta["layer"] == "23"
    np.testing.assert_allclose(arr, states.astype(np.float16))
    with pytest.raises(ValueError, match="does not match 2 ids"):
        write_hidden_states(tmp_path / "bad.safetensors", ["a", "b"], states, layer=1, model="m", dataset="d")
    assert not (tmp_path / "bad.safetensors").exists()


def test_path_of_renames_wildcards_and_knows_every_file():
    from uqroute.schema import ARTIFACTS, FILES, path_of

    assert path_of("generations", model="slm") == "results/generations/{slm}/{dataset}.parquet"
    assert path_of("hidden_states", model="llm") == "results/generations/{llm}/{dataset}.hidden.safetensors"
    assert path_of("uq") == ARTIFACTS["uq"].path and path_of("revisions_lock") == FILES["revisions_lock"]
    with pytest.raises(KeyError, match="no wildcard"):
        path_of("data", model="slm")
    with pytest.raises(KeyError):
        path_of("nope")


def test_rules_restate_no_artifact_path():
    """Rules take their paths from the registries (uqroute.schema.path_of, FIGURES, TABLE_FILES)."""
    import re
    from pathlib import Path

    rules = Path(__file__).resolve().parents[1] / "workflow" / "rules"
    literal = re.compile(r"[\"'](?:results|resources)/")
    found = [
        f"{p.name}:{i}"
        for p in sorted(rules.glob("*.smk"))
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if literal.search(line)
    ]
    assert not found, f"rules restate artifact paths: {found}"

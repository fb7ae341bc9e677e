"""The reading half of the artifact contract: uqroute.io.read_artifact and align_ids."""

from __future__ import annotations

import polars as pl
import pytest

from uqroute import io
from uqroute.io import ArtifactInputError


def _agreement(n_both=3):
    return pl.DataFrame(
        {
            "model": ["m"],
            "dataset": ["d"],
            "n_both": pl.Series([n_both], dtype=pl.Int64),
            "agreement": [1.0],
            "cohen_kappa": pl.Series([None], dtype=pl.Float64),
        }
    )


def test_read_artifact_round_trip(tmp_path):
    path = tmp_path / "a.parquet"
    io.write_parquet(_agreement(), path, "agreement")
    assert io.read_artifact(path, "agreement").equals(_agreement())
    assert io.read_artifact(path, "agreement", columns=["n_both"]).columns == ["model", "dataset", "n_both"]


def test_read_artifact_missing_file_names_it(tmp_path):
    with pytest.raises(ArtifactInputError, match=r"uq: agreement file .*nope.parquet does not exist"):
        io.read_artifact(tmp_path / "nope.parquet", "agreement", stage="uq")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_read_artifact_corrupt_parquet_names_file(tmp_path, damage):
    path = tmp_path / "a.parquet"
    io.write_parquet(_agreement(), path, "agreement")
    blob = path.read_bytes()
    path.write_bytes({"truncate": blob[: len(blob) // 2], "garbage": b"<html>502</html>", "empty": b""}[damage])
    with pytest.raises(ArtifactInputError, match=r"agreement file .*a.parquet cannot be read as parquet"):
        io.read_artifact(path, "agreement")


def test_read_artifact_schema_violations(tmp_path):
    path = tmp_path / "a.parquet"
    _agreement().drop("n_both").write_parquet(path)
    with pytest.raises(ArtifactInputError, match="n_both"):
        io.read_artifact(path, "agreement")
    with pytest.raises(ArtifactInputError, match=r"lacks column\(s\) \['n_both'\]"):
        io.read_artifact(path, "agreement", columns=["n_both"])
    _agreement().with_columns(pl.col("n_both").cast(pl.Float64)).write_parquet(path)
    with pytest.raises(ArtifactInputError, match="n_both.*Float64"):
        io.read_artifact(path, "agreement", columns=["n_both"])
    pl.concat([_agreement(), _agreement()]).write_parquet(path)
    with pytest.raises(ArtifactInputError, match="not unique"):
        io.read_artifact(path, "agreement", columns=["n_both"])


def test_align_ids_orders_and_names_missing_and_extra():
    df = pl.DataFrame({"id": ["c", "a", "b"], "x": [3, 1, 2]})
    assert io.align_ids(["a", "b", "c"], df, "f.parquet", what="uq")["x"].to_list() == [1, 2, 3]
    assert io.align_ids(["b"], df, "f.parquet", what="uq")["x"].to_list() == [2]
    with pytest.raises(ArtifactInputError, match=r"uq file f.parquet holds 2 unexpected id\(s\)"):
        io.align_ids(["b"], df, "f.parquet", what="uq", exact=True)
    with pytest.raises(ArtifactInputError, match=r"routing: uq file f.parquet lacks 1 expected id\(s\), e.g. \['z'\]"):
        io.align_ids(["a", "z"], df, "f.parquet", what="uq", stage="routing")
    with pytest.raises(ArtifactInputError, match="holds id 'a' more than once"):
        io.align_ids(["a"], pl.DataFrame({"id": ["a", "a"], "x": [1, 2]}), "f.parquet", what="uq")
    empty = pl.DataFrame({"id": pl.Series([], dtype=pl.Utf8), "x": pl.Series([], dtype=pl.Int64)})
    assert io.align_ids([], empty, "f.parquet", what="uq").height == 0


# ------------------------------------------------------------------ provenance in every parquet artifact
def test_provenance_is_written_read_back_and_byte_identical_on_rerun(tmp_path):
    from uqroute import __version__

    prov = io.provenance(
        {"data": {"source": "slices"}, "seed": 0},
        models={"m": "hub:org/m@" + "a" * 40},
        datasets={"boolq": {"source": "slices", "files": {"x.parquet": "b" * 64}}},
    )
    io.write_parquet(_agreement(), tmp_path / "a.parquet", "agreement", provenance=prov)
    io.write_parquet(_agreement(), tmp_path / "b.parquet", "agreement", provenance=prov)
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()  # no timestamp inside
    got = io.read_provenance(tmp_path / "a.parquet")
    assert got["uqroute_version"] == __version__ and got["artifact"] == "agreement"
    assert got["git_commit"] is None or len(got["git_commit"]) == 40
    assert got["config_sha256"] == io.fingerprint({"data": {"source": "slices"}, "seed": 0})
    assert got["models"] == {"m": "hub:org/m@" + "a" * 40} and got["datasets"]["boolq"]["files"] == {
        "x.parquet": "b" * 64
    }
    io.write_parquet(_agreement(), tmp_path / "c.parquet", "agreement", provenance=io.provenance({"seed": 1}))
    assert io.read_provenance(tmp_path / "c.parquet")["config_sha256"] != got["config_sha256"]


def test_provenance_without_a_record_still_names_the_code(tmp_path):
    io.write_parquet(_agreement(), tmp_path / "a.parquet")
    got = io.read_provenance(tmp_path / "a.parquet")
    assert (
        set(got) >= {"uqroute_version", "git_commit", "git_dirty"}
        and got["models"] == {}
        and "config_sha256" not in got
    )


def test_provenance_carries_the_models_and_datasets_of_its_inputs(tmp_path):
    """uq derives from generations, which derive from a model and a dataset: all of them are named downstream,
    and two inputs made from different versions of one model keep both identities."""
    io.write_parquet(
        _agreement(), tmp_path / "gen.parquet", provenance=io.provenance(models={"slm": "pypi:sha256:" + "1" * 64})
    )
    io.write_parquet(
        _agreement(), tmp_path / "data.parquet", provenance=io.provenance(datasets={"boolq": {"commit": "c1"}})
    )
    io.write_parquet(
        _agreement(), tmp_path / "old.parquet", provenance=io.provenance(models={"slm": "pypi:sha256:" + "0" * 64})
    )
    model_dir = tmp_path / "judge"
    model_dir.mkdir()
    (model_dir / ".uqroute-complete.json").write_text('{"model": "judge", "weights_identity": "hub:org/j@abc"}')
    prov = io.provenance(
        {"k": 1}, inputs=[tmp_path / "gen.parquet", tmp_path / "data.parquet", model_dir, tmp_path / "x.safetensors"]
    )
    assert prov["models"] == {"slm": "pypi:sha256:" + "1" * 64, "judge": "hub:org/j@abc"}
    assert prov["datasets"] == {"boolq": {"commit": "c1"}}
    mixed = io.provenance(inputs=[tmp_path / "gen.parquet", tmp_path / "old.parquet"])
    assert mixed["models"]["slm"] == ["pypi:sha256:" + "0" * 64, "pypi:sha256:" + "1" * 64]


def test_read_provenance_errors_name_the_file(tmp_path):
    with pytest.raises(ArtifactInputError, match=r"file .*nope.parquet does not exist"):
        io.read_provenance(tmp_path / "nope.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"<html>")
    with pytest.raises(ArtifactInputError, match=r"bad.parquet cannot be read as parquet"):
        io.read_provenance(tmp_path / "bad.parquet")
    _agreement().write_parquet(tmp_path / "plain.parquet")  # not written by uqroute
    assert io.read_provenance(tmp_path / "plain.parquet") == {}
    uq = tmp_path / "results/uq/slm/boolq.parquet"
    uq.parent.mkdir(parents=True)
    uq.write_bytes(b"PAR1 truncated")
    with pytest.raises(ArtifactInputError, match=r"^uq file .*results/uq/slm/boolq.parquet cannot be read as parquet"):
        io.read_provenance(uq)


def test_artifact_of_path_names_the_most_specific_pattern():
    assert io.artifact_of_path("results/uq/slm-c/boolq.parquet") == "uq"
    assert io.artifact_of_path("/x/results/correctness/m/d.agreement.parquet") == "agreement"
    assert io.artifact_of_path("/x/results/correctness/m/d.parquet") == "correctness"
    assert io.artifact_of_path("notes.parquet") is None


def test_provenance_names_config_values_packages_and_time_and_keeps_the_bytes(tmp_path):
    import datetime
    import importlib.metadata

    cfg = {"inference": {"num_samples": 5, "sample_max_new_tokens": None}, "seed": 0}
    io.write_parquet(_agreement(), tmp_path / "a.parquet", "agreement", provenance=io.provenance(cfg))
    io.write_parquet(_agreement(), tmp_path / "b.parquet", "agreement", provenance=io.provenance(cfg))
    assert (tmp_path / "a.parquet").read_bytes() == (
        tmp_path / "b.parquet"
    ).read_bytes()  # the time is beside the file, not in it
    got = io.read_provenance(tmp_path / "a.parquet")
    assert got["config"] == cfg and got["config_sha256"] == io.fingerprint(cfg)
    assert got["packages"]["polars"] == importlib.metadata.version("polars") and "numpy" in got["packages"]
    stamp = datetime.datetime.fromisoformat(got["written_at"])
    assert abs((datetime.datetime.now(datetime.timezone.utc) - stamp).total_seconds()) < 60
    assert (tmp_path / "a.parquet.provenance.json").is_file()
    (tmp_path / "a.parquet.provenance.json").write_text('{"written_at": "2020-01-01T00:00:00+00:00", "size": 1}')
    assert "written_at" not in io.read_provenance(
        tmp_path / "a.parquet"
    )  # a sidecar of another file version is ignored

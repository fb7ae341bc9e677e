"""The reading half of the artifact contract: uqroute.io.read_artifact and align_ids."""

from __future__ import annotations

import polars as pl
import pytest

from uqroute import io
from uqroute.io import ArtifactInputError


def _agreement(n_both=3):
    return pl.DataFrame({"model": ["m"], "dataset": ["d"], "n_both": pl.Series([n_both], dtype=pl.Int64),
                         "agreement": [1.0], "cohen_kappa": pl.Series([None], dtype=pl.Float64)})


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

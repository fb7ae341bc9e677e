"""`uqroute calibrate` refuses a hold-out set, SLM weights and probe that do not belong together, reads
the inference settings the hold-out file records, and warns about coarse or useless operating points."""

import json
import logging

import numpy as np
import polars as pl
import pytest

from uqroute import io
from uqroute.cli import main
from uqroute.router.build import calibrate_file, run_router_holdout
from uqroute.router.calibrate import CalibrationError
from uqroute.routing.synthetic import write_synthetic

DATASETS = ["gsm8k", "boolq"]
SMOL = "pypi:sha256:" + "1" * 64
INFERENCE = {"num_samples": 3, "verbal_max_new_tokens": 64, "sample_max_new_tokens": 192}


@pytest.fixture(scope="module")
def holdout(tmp_path_factory):
    root = tmp_path_factory.mktemp("calib")
    uq, corr, data = write_synthetic(
        root, slms=["smol"], llms=["l"], datasets=DATASETS, methods=["perplexity", "ood_probe"], n=60
    )
    hold = root / "holdout.parquet"
    run_router_holdout(
        uq_paths=uq,
        correctness_paths=[p for p in corr if "/correctness/smol/" in p],
        data_paths=data,
        slm="smol",
        datasets=DATASETS,
        methods=["perplexity", "ood_probe"],
        out_path=hold,
        routing_params={"seeds": [50], "bins": 10, "k": 0.2},
        provenance=io.provenance({"inference": INFERENCE, "seed": 7}, models={"smol": SMOL}),
    )
    return root, hold


def model_dir(tmp_path, name, identity, hidden=16):
    d = tmp_path / name
    d.mkdir()
    (d / ".uqroute-complete.json").write_text(json.dumps({"model": name, "weights_identity": identity}))
    (d / "config.json").write_text(json.dumps({"hidden_size": hidden}))
    return d


def relabel(hold, out, slm, keep_metadata):
    df = pl.read_parquet(hold).with_columns(pl.lit(slm).alias("slm"))
    if keep_metadata:
        io.write_parquet(df, out, "router_holdout", provenance=io.read_provenance(hold))
    else:
        df.write_parquet(out)
    return out


def test_a_relabelled_holdout_is_refused(holdout, tmp_path):
    root, hold = holdout
    smol_dir = model_dir(tmp_path, "smol", SMOL)
    kw = dict(out_path=tmp_path / "r.json", llm_accuracy=0.8, llm_fraction=0.3, method="perplexity")
    # its provenance says smol's confidences, its rows say qwen's
    bad = relabel(hold, tmp_path / "relabelled.parquet", "qwen", keep_metadata=True)
    with pytest.raises(
        CalibrationError,
        match=r"its rows say SLM 'qwen', but its provenance says it was computed from the models \['smol'\]",
    ):
        calibrate_file(holdout_path=bad, model_dir=str(smol_dir), **kw)
    # relabelled by a tool that drops the metadata: smol's --slm-dir gives it away
    bare = relabel(hold, tmp_path / "bare.parquet", "qwen", keep_metadata=False)
    with pytest.raises(
        CalibrationError,
        match=r"--slm-dir .*smol holds the model smol, but the hold-out file .* says its rows are SLM 'qwen'",
    ):
        calibrate_file(holdout_path=bare, model_dir=str(smol_dir), **kw)
    assert not (tmp_path / "r.json").exists()
    # the same name with other weights
    other = model_dir(tmp_path / "x", "smol", "pypi:sha256:" + "2" * 64) if (tmp_path / "x").mkdir() is None else None
    with pytest.raises(
        CalibrationError,
        match="holds weights pypi:sha256:2222.* but the hold-out file .* was computed with smol weights pypi:sha256:1111",
    ):
        calibrate_file(holdout_path=hold, model_dir=str(other), **kw)
    doc = calibrate_file(holdout_path=hold, model_dir=str(smol_dir), **kw)
    assert doc["slm_model"]["weights"] == SMOL


def test_a_probe_of_another_model_is_refused(holdout, tmp_path):
    from uqroute.probes import fit_probe, save_probe

    root, hold = holdout
    rng = np.random.default_rng(0)
    probe = fit_probe(
        rng.normal(size=(40, 8)),
        rng.random(40) < 0.5,
        hidden_sizes=[4],
        epochs=1,
        batch_size=8,
        lr=1e-3,
        seed=0,
        label="t",
    )
    save_probe(tmp_path / "p.safetensors", probe, training_datasets=DATASETS)
    kw = dict(
        out_path=tmp_path / "r.json",
        llm_accuracy=0.8,
        llm_fraction=0.3,
        method="ood_probe",
        probe_path=tmp_path / "p.safetensors",
    )
    with pytest.raises(
        CalibrationError, match="reads 8-dimensional hidden states, but the SLM in --slm-dir .* has hidden size 16"
    ):
        calibrate_file(holdout_path=hold, model_dir=str(model_dir(tmp_path, "smol", SMOL, hidden=16)), **kw)
    (tmp_path / "smol8").mkdir()
    doc = calibrate_file(holdout_path=hold, model_dir=str(model_dir(tmp_path / "smol8", "smol", SMOL, hidden=8)), **kw)
    assert doc["probe"]["training_datasets"] == DATASETS


def test_inference_settings_come_from_the_holdout_without_a_configfile(holdout, tmp_path, caplog):
    root, hold = holdout
    doc = calibrate_file(
        holdout_path=hold, out_path=tmp_path / "r.json", llm_accuracy=0.8, llm_fraction=0.3, method="perplexity"
    )
    assert (
        doc["inference"]["num_samples"] == 3
        and doc["inference"]["verbal_max_new_tokens"] == 64
        and doc["inference"]["seed"] == 7
    )
    bare = relabel(hold, tmp_path / "bare.parquet", "smol", keep_metadata=False)
    with caplog.at_level(logging.WARNING, logger="uqroute.router"):
        doc = calibrate_file(
            holdout_path=bare, out_path=tmp_path / "r.json", llm_accuracy=0.8, llm_fraction=0.3, method="perplexity"
        )
    assert doc["inference"]["num_samples"] == 5 and doc["inference"]["seed"] == 0  # the schema's defaults, said so
    assert "records no inference settings and no --configfile was given" in caplog.text
    assert "records no model identities" in caplog.text


def test_warns_on_a_small_holdout_and_an_operating_point_that_routes_everything(holdout, tmp_path, capsys, caplog):
    root, hold = holdout
    small = tmp_path / "small.parquet"
    df = pl.read_parquet(hold).filter(pl.col("method") == "perplexity")
    df = df.with_columns(*[pl.col(c).list.head(4) for c in ("source_dataset", "id", "confidence", "slm_correct")])
    from uqroute.routing import tie_aware_thresholds

    t, q = tie_aware_thresholds(np.array(df["confidence"][0].to_list()), np.array(df["ratio"][0].to_list()))
    df = df.with_columns(
        pl.Series("threshold", [t.tolist()]), pl.Series("q", [q.tolist()]), pl.Series("slm_correct", [[False] * 4])
    )  # only the LLM answers right: nothing short of 1 reaches its accuracy
    io.write_parquet(df, small, "router_holdout", provenance=io.read_provenance(hold))
    with caplog.at_level(logging.WARNING, logger="uqroute.router"):
        rc = main(
            [
                "calibrate",
                "--holdout",
                str(small),
                "--out",
                str(tmp_path / "r.json"),
                "--llm-accuracy",
                "1.0",
                "--llm-accuracy-share",
                "1.0",
            ]
        )
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "the hold-out set has 4 rows, fewer than its 10 bins" in caplog.text
    assert (
        "the operating point routes every request to the LLM (no smaller fraction reaches 1.0 of the LLM's predicted accuracy)"
        in caplog.text
    )


def test_version_and_defaults_in_help(capsys):
    from uqroute import __version__

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith(f"uqroute {__version__}")
    for cmd, wants in (
        ("serve", ["(default: 8000)", "(default: 127.0.0.1)", "(default: 60.0)", "(default: info)"]),
        ("calibrate", ["(default: tracking)", "(default: 500)", "(default: 0.1)", "(default: 256)"]),
    ):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        for w in wants:
            assert w in out, (cmd, w)

"""The rules' conda environments (envs/*.yaml) build where Snakemake builds them.

What can be checked without a conda channel (none is reachable from the development machines):

* the files are what envs/make_envs.py makes of requirements.lock (fresh), parse as conda
  environment files, pin every pip package to the lock and point at nothing relative (Snakemake
  copies them to .snakemake/conda/ or --conda-prefix, and conda runs pip from there);
* every rule names one of them, and the rules of the environment without torch import nothing
  that environment lacks, even when they run (the library's code for those rules, with every
  package outside the environment made unimportable);
* (slow, needs PyPI) pip resolves each file's pip section from the folder Snakemake would run it
  in, against the real index, to exactly the pinned set (plus torch's own CUDA libraries).
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ENVS = ROOT / "envs"
RULE_FILES = sorted((ROOT / "workflow" / "rules").glob("*.smk"))


def env_files() -> list[Path]:
    return sorted(ENVS.glob("*.yaml"))


def pip_section(path: Path) -> list[str]:
    env = yaml.safe_load(path.read_text())
    pips = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pips) == 1, f"{path.name}: one pip section expected"
    return pips[0]


def lock() -> dict[str, str]:
    from packaging.utils import canonicalize_name

    return {
        canonicalize_name(l.split("==")[0]): l.split("==")[1] for l in (ROOT / "requirements.lock").read_text().split()
    }


def rules() -> dict[str, dict]:
    """``{rule: {"env": envs/<name>.yaml, "script": workflow/scripts/<name>.py}}`` from workflow/rules/*.smk."""
    out = {}
    for path in RULE_FILES:
        for block in re.split(r"(?m)^(?=rule \w+:)", path.read_text()):
            if not block.startswith("rule "):
                continue
            name = re.match(r"rule (\w+):", block).group(1)
            env = re.search(r'conda:\s*\n\s*"([^"]+)"', block)
            if env is None and re.search(r"conda:\s*\n\s*lambda w: model_env\(", block):
                # the model's engine picks the env (common.smk model_env): torch.yaml, or vllm.yaml on vLLM
                env = re.match(r"(.*)", "../../envs/torch.yaml")
            script = re.search(r'script:\s*\n\s*"([^"]+)"', block)
            out[name] = {
                "env": (path.parent / env.group(1)).resolve() if env else None,
                "script": (path.parent / script.group(1)).resolve() if script else None,
            }
    return out


def test_env_files_are_fresh():
    proc = subprocess.run([sys.executable, str(ENVS / "make_envs.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("path", env_files(), ids=lambda p: p.name)
def test_env_file_pins_everything_to_the_lock_and_points_at_nothing_relative(path):
    from packaging.utils import canonicalize_name

    env = yaml.safe_load(path.read_text())
    assert env["channels"] == ["conda-forge", "nodefaults"]
    assert "python=3.11" in env["dependencies"] and "pip" in env["dependencies"]
    pins = lock()
    for line in pip_section(path):
        assert not line.startswith("-"), f"{path.name}: pip option {line!r} (paths resolve against .snakemake/conda/)"
        name, _, version = line.partition("==")
        assert version, f"{path.name}: {line!r} is not pinned"
        if line in _added(path):  # an env's own engine (vllm), not a library dependency: pinned in make_envs.py
            continue
        if canonicalize_name(name) != "setuptools":  # `pip freeze` leaves it out of the lock (envs/make_envs.py)
            assert pins.get(canonicalize_name(name)) == version, f"{path.name}: {line} differs from requirements.lock"


def _added(path: Path) -> tuple[str, ...]:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_envs", ENVS / "make_envs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return tuple(mod.ENVS.get(path.stem, {}).get("add", ()))


def test_only_the_torch_env_has_torch():
    names = {p.stem: {l.split("==")[0].lower() for l in pip_section(p)} for p in env_files()}
    assert set(names) == {"torch", "eval", "vllm"}
    assert {"torch", "transformers", "accelerate"} <= names["torch"]
    assert not {"torch", "transformers", "accelerate"} & names["eval"]
    # the vLLM env takes torch and transformers from vLLM's own pins, and has the library's other packages
    assert "vllm" in names["vllm"] and not {"torch", "transformers", "accelerate"} & names["vllm"]
    assert names["eval"] <= names["vllm"]


def test_the_vllm_engine_picks_the_vllm_env():
    text = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    assert '"../../envs/vllm.yaml" if runs_locally(model) and model_engine(model) == "vllm"' in text
    for rule in ("infer", "infer_llm"):
        block = re.search(
            rf"(?ms)^rule {rule}:.*?(?=^rule |\Z)", (ROOT / "workflow" / "rules" / "infer.smk").read_text()
        )
        assert "lambda w: model_env(" in block.group(0), rule


def test_every_rule_names_an_env_of_the_repository():
    found = rules()
    assert {
        "download",
        "download_model",
        "fetch_model",
        "infer",
        "infer_llm",
        "judge",
        "probe",
        "uq",
        "routing",
    } <= set(found)
    for name, rule in found.items():
        if name == "all":
            continue
        assert rule["env"] is not None and rule["env"].parent == ENVS and rule["env"].is_file(), name
    torch_rules = {n for n, r in found.items() if r["env"] and r["env"].name == "torch.yaml"}
    assert torch_rules == {
        "fetch_model",
        "infer",
        "infer_llm",
        "judge",
        "probe",
        "proxy_probe",
        "router_probe",
        "router",
    }


# A job in envs/eval.yaml has only that file's packages (plus the standard library and this
# repository's src/). The check emulates that: a folder holding links to exactly those installed
# distributions (every top-level entry of their RECORD: packages, modules, bundled .libs) is the
# only site-packages of a Python started with -S (no site: the venv's own packages are not seen).
def env_site(tmp_path: Path, env: Path) -> Path:
    from importlib import metadata

    site = tmp_path / "site-packages"
    site.mkdir()
    for line in pip_section(env):
        dist = metadata.distribution(line.split("==")[0])
        base = Path(dist.locate_file(""))
        for top in {Path(str(f)).parts[0] for f in dist.files or []}:
            if top not in ("..", "__pycache__", "bin") and (base / top).exists() and not (site / top).exists():
                (site / top).symlink_to(base / top)
    return site


def run_in_env(site: Path, code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    std = subprocess.run(
        [sys.executable, "-S", "-c", "import sys; print(repr(sys.path))"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    paths = [str(site), str(ROOT / "src")] + [p for p in ast.literal_eval(std.stdout) if p and "site-packages" not in p]
    prelude = f"import sys; sys.path[:] = {paths!r}\n"
    return subprocess.run(
        [sys.executable, "-S", "-c", prelude + code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={
            k: v
            for k, v in {**os.environ, "UQROUTE_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}.items()
            if k != "PYTHONPATH"
        },
    )


def _eval_env_code(tmp_path: Path) -> str:
    """Imports of every eval-env rule script, then the library calls of download and download_model."""
    lines = []
    for _name, rule in sorted(rules().items()):
        if rule["env"] and rule["env"].name == "eval.yaml" and rule["script"]:
            tree = ast.parse(rule["script"].read_text())
            lines += [
                ast.unparse(node)
                for node in tree.body
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("uqroute")
            ]
    gguf = tmp_path / "t.gguf"
    lines += [
        "from uqroute.data import build_dataset",
        f"build_dataset('commonsenseqa', {str(tmp_path / 'd.parquet')!r}, source='slices', slices_dir={str(ROOT / 'data/slices')!r}, eval_limit=3, train_limit=2)",
        "import numpy as np; from gguf import GGUFWriter",
        f"w = GGUFWriter({str(gguf)!r}, 'llama'); w.add_name('t'); w.add_token_list(['a', 'b'])",
        "w.add_tensor('x', np.zeros((2, 2), dtype=np.float32)); w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()",
        f"import hashlib; sha = hashlib.sha256(open({str(gguf)!r}, 'rb').read()).hexdigest()",
        "from uqroute.models import download_model",
        f"download_model('t', {{'gguf': {{'path': {str(gguf)!r}, 'sha256': sha}}, 'gguf_metadata': {{'vocab_size': 2}}}}, {str(tmp_path / 'r.json')!r})",
        "import sys; print('torch' in sys.modules, 'transformers' in sys.modules)",
    ]
    return "\n".join(lines)


def test_the_eval_env_rules_need_nothing_outside_the_eval_env(tmp_path):
    proc = run_in_env(env_site(tmp_path, ENVS / "eval.yaml"), _eval_env_code(tmp_path), tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip().splitlines()[-1] == "False False"
    assert json.loads((tmp_path / "r.json").read_text())["source"] == "gguf"


def test_the_emulated_eval_env_has_no_torch(tmp_path):
    """The check above can fail: torch cannot be imported there (it can in the development venv)."""
    proc = run_in_env(env_site(tmp_path, ENVS / "eval.yaml"), "import polars, uqroute.io\nimport torch\n", tmp_path)
    assert proc.returncode != 0 and "No module named 'torch'" in proc.stderr, proc.stderr[-2000:]


# ------------------------------------------------------------------ pip, from where Snakemake runs it (slow: PyPI)
@pytest.mark.slow
@pytest.mark.parametrize("name", ["eval", "torch"])
def test_pip_section_resolves_from_the_snakemake_conda_folder_against_pypi(tmp_path, name):
    """As `conda env create` does for Snakemake: the env file copied to .snakemake/conda/<hash>.yaml,
    its pip lines written to a requirements file beside it, pip run from that folder. Resolved
    against the real index (PyPI; this machine's local wheel folders switched off) in a fresh venv
    of the env's Python: exactly the pinned set, nothing unpinned, and CUDA torch for envs/torch.yaml."""
    folder = tmp_path / "work" / ".snakemake" / "conda"
    folder.mkdir(parents=True)
    src = ENVS / f"{name}.yaml"
    (folder / "0123abcd.yaml").write_text(src.read_text())
    (folder / "condaenv.test.requirements.txt").write_text("\n".join(pip_section(src)) + "\n")
    venv.create(tmp_path / "venv", with_pip=True)
    report = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    proc = subprocess.run(
        [
            str(tmp_path / "venv" / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            str(report),
            "-r",
            "condaenv.test.requirements.txt",
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    from packaging.utils import canonicalize_name

    resolved = {
        canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"]
        for i in json.loads(report.read_text())["install"]
    }
    pinned = {canonicalize_name(l.split("==")[0]): l.split("==")[1] for l in pip_section(src)}
    for pkg, version in pinned.items():
        assert resolved.get(pkg) == version, f"{pkg}: pinned {version}, resolved {resolved.get(pkg)}"
    extra = set(resolved) - set(pinned)
    if name == "torch":  # torch's CUDA build brings its own exactly pinned CUDA libraries
        assert resolved["torch"] == "2.13.0" and any(p.startswith("nvidia-") for p in extra), sorted(extra)
        extra = {p for p in extra if not p.startswith(("nvidia-", "triton", "cuda-"))}
    assert not extra, f"unpinned packages pulled in: {sorted(extra)}"


# ------------------------------------------------------------------ what the preset's models need
def _make_envs():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_envs", ENVS / "make_envs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_rwkv_model_of_the_paper_preset_needs_the_rwkv_extra():
    make_envs = _make_envs()
    models = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())["models"]
    assert make_envs.model_extras(models["rwkv7-2.9b"]) == ("rwkv",)
    assert make_envs.model_extras(models["qwen3-0.6b"]) == ()
    assert make_envs.model_extras({"api": {"model": "fla-hub/rwkv7-2.9B-world"}}) == ()  # runs on its server


@pytest.mark.parametrize("preset", sorted(p.name for p in (ROOT / "config").glob("*.yaml") if p.name != "schema.yaml"))
def test_every_local_model_of_a_preset_finds_its_extras_pinned_in_the_torch_env(preset):
    """The models run in envs/torch.yaml (rules fetch_model, infer, infer_llm, judge): every requirement of
    every pyproject extra a model needs is pinned there, at the lock's version."""
    import tomllib
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    make_envs = _make_envs()
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pinned = {canonicalize_name(l.split("==")[0]): l.split("==")[1] for l in pip_section(ENVS / "torch.yaml")}
    pins = lock()
    models = yaml.safe_load((ROOT / "config" / preset).read_text()).get("models") or {}
    for name, spec in models.items():
        for extra in make_envs.model_extras(spec):
            for text in optional[extra]:
                req = canonicalize_name(Requirement(text).name)
                assert pinned.get(req) == pins[req], (
                    f"{preset}: model {name} needs {text} (extra {extra!r}), envs/torch.yaml lacks it"
                )


def test_the_emulated_torch_env_finds_flash_linear_attention(tmp_path):
    """The modules RWKV-7's hub code imports (fla, its einops and triton) are importable from the torch env alone."""
    code = "import importlib.util as u\nprint([m for m in ('fla', 'einops', 'triton', 'torch', 'transformers') if u.find_spec(m) is None])"
    proc = run_in_env(env_site(tmp_path, ENVS / "torch.yaml"), code, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"

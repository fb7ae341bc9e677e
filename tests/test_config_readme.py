"""config/README.md (what each config key does, as the Snakemake workflow catalog shows it) is
generated from the schema and must be fresh; every key must say what it does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from uqroute import settings

ROOT = Path(__file__).resolve().parents[1]


def test_config_readme_is_fresh():
    fresh = subprocess.run(
        [sys.executable, "-m", "uqroute.settings", "--readme"], capture_output=True, text=True, check=True
    ).stdout
    assert (ROOT / "config" / "README.md").read_text() == fresh, (
        "config/README.md is stale: python -m uqroute.settings --readme > config/README.md"
    )


def _keys(prefix, sub, root):
    sub = settings._resolve(sub, root)
    yield prefix, sub
    for name, child in (sub.get("properties") or {}).items():
        yield from _keys(f"{prefix}.{name}", child, root)


def test_every_config_key_says_what_it_does():
    root = settings.schema()
    keys = [k for name, sub in root["properties"].items() for k in _keys(name, sub, root)]
    keys += list(_keys("models.<name>", root["definitions"]["model"], root))[1:]
    undocumented = [k for k, sub in keys if not sub.get("description")]
    assert not undocumented, f"config keys without a `description:` in src/uqroute/config_schema.yaml: {undocumented}"
    text = (ROOT / "config" / "README.md").read_text()
    assert all(f"| `{k}` |" in text for k, _ in keys if k != "models")  # `models` is the section heading
    assert (
        "| `revisions_lock` | string or null | `null` |" in text
        and "| `models.<name>.gguf_metadata.name` | string |" in text
    )


def test_catalog_metadata_parses_as_the_catalog_reads_it():
    meta = yaml.safe_load((ROOT / ".snakemake-workflow-catalog.yml").read_text())
    usage = meta["usage"]
    assert set(usage["software-stack-deployment"]) == {"conda", "apptainer", "apptainer+conda"}
    assert usage["software-stack-deployment"]["conda"] is True and usage["report"] is True
    assert isinstance(usage["mandatory-flags"]["flags"], (str, list))


def test_settings_holds_no_key_docs_and_the_check_command_moved():
    """What a key does is written once, in the schema's `description:`; `python -m uqroute.settings CONFIG`
    points to the check command (the checks need the stages, which settings does not import)."""
    assert not hasattr(settings, "KEY_DOCS") and not hasattr(settings, "check_config")
    proc = subprocess.run([sys.executable, "-m", "uqroute.settings", "my.yaml"], capture_output=True, text=True)
    assert proc.returncode == 2 and "python -m uqroute.preflight CONFIG.yaml" in proc.stderr

"""CI fails when it should: with `CI` set, any skipped test fails the run (tests/conftest.py),
`.ci/run` sets `CI`, and `make test` stops when the SLURM bring-up fails under CI."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

INNER_TESTS = """
import pytest

def test_passes():
    pass

def test_skips_itself():
    pytest.skip("no SLURM cluster here")

@pytest.fixture
def server():
    pytest.skip("no vLLM server")

def test_needs_a_server(server):
    pass

@pytest.mark.skipif(True, reason="mirror not found")
def test_skipped_by_marker():
    pass
"""


@pytest.fixture()
def inner(pytester):
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makepyfile(test_inner=INNER_TESTS)
    return pytester


@pytest.mark.parametrize("ci", ["true", "1", "yes"])
def test_any_skip_fails_the_run_in_ci_and_names_each_test_and_reason(inner, monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    result = inner.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*skipped tests fail the run in CI*",
            "*3 skipped test(s) count as failures*",
            "SKIPPED IN CI test_inner.py::test_skips_itself: no SLURM cluster here",
            "SKIPPED IN CI test_inner.py::test_needs_a_server: no vLLM server",
            "SKIPPED IN CI test_inner.py::test_skipped_by_marker: mirror not found",
        ]
    )


@pytest.mark.parametrize("ci", [None, "", "0", "false"])
def test_skips_are_only_reported_outside_ci(inner, monkeypatch, ci):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    result = inner.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
    assert "SKIPPED IN CI" not in result.stdout.str()
    result.assert_outcomes(passed=1, skipped=3)


def test_ci_entry_point_sets_ci():
    """`.ci/run` exports CI before `make test`, so the guards above and in the slow tests are on."""
    text = (ROOT / ".ci" / "run").read_text()
    export = re.search(r"^export .*\bCI=(\S+)", text, re.M)
    assert export and export.group(1) not in ("", "0", "false"), text
    assert text.index("CI=") < text.index("make test")


def _make(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`make` in the repository with the install targets taken as done (-o)."""
    return subprocess.run(
        ["make", "-o", "install", "-o", "install-vllm", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_make_test_brings_slurm_up_before_the_tests():
    proc = _make("-n", "test")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    up = [i for i, line in enumerate(lines) if "slurm-up.sh" in line]
    tests = [i for i, line in enumerate(lines) if "-m pytest" in line]
    assert up and tests and up[0] < tests[0], proc.stdout


@pytest.mark.parametrize(("ci", "stops"), [("true", True), ("1", True), ("", False), ("false", False)])
def test_a_failed_slurm_bring_up_stops_make_test_only_in_ci(tmp_path, ci, stops):
    failing = tmp_path / "slurm-up.sh"
    failing.write_text("echo 'slurm-up: FAILED: munged did not start' >&2; exit 1\n")
    proc = _make("test-slurm-up", f"SLURM_UP=bash {failing}", env={"CI": ci})
    assert (proc.returncode != 0) == stops, (proc.returncode, proc.stdout, proc.stderr)
    assert "munged did not start" in proc.stderr
    if not stops:
        assert "tests/test_slurm.py will skip" in proc.stdout

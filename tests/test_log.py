"""workflow/scripts/_log.py: a job's logging, Python warnings and stdout reach its Snakemake log
file (`logs/` is what cluster users read); tqdm progress stays on stderr."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

JOB = textwrap.dedent(
    """
    import logging, sys, types, warnings
    sys.path.insert(0, {scripts!r})
    from _log import logged
    from tqdm import tqdm

    snakemake = types.SimpleNamespace(log=[{log!r}])
    with logged(snakemake):
        logging.getLogger("uqroute.uq").warning("uq: method verbal_1s could not score 3 of 16 queries")
        warnings.warn("trained_probe[boolq]: all 8 training labels are True", UserWarning)
        from sklearn.metrics import roc_auc_score
        try:
            roc_auc_score([1, 1, 1], [0.2, 0.5, 0.9])   # one class: sklearn warns, AUC is undefined
        except ValueError:
            pass
        class ProbeWarning(UserWarning):  # as uqroute.probes.ProbeWarning (not imported: it loads torch)
            pass
        warnings.warn("ood_probe[gsm8k]: constant score", ProbeWarning)
        print("printed to stdout")
        for _ in tqdm(range(3), desc="progress-bar"):
            pass
    warnings.warn("after the job: not in its log", UserWarning)
    """
)


def run_job(tmp_path: Path) -> tuple[str, str]:
    log = tmp_path / "logs" / "job.log"
    log.parent.mkdir(parents=True)
    code = JOB.format(scripts=str(ROOT / "workflow" / "scripts"), log=str(log))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return log.read_text(), proc.stderr


def test_warnings_and_logging_go_to_the_job_log_and_tqdm_to_stderr(tmp_path):
    log, stderr = run_job(tmp_path)
    assert "WARNING uqroute.uq: uq: method verbal_1s could not score 3 of 16 queries" in log
    assert "WARNING py.warnings:" in log
    assert "UserWarning: trained_probe[boolq]: all 8 training labels are True" in log
    assert "ProbeWarning: ood_probe[gsm8k]: constant score" in log
    assert "UndefinedMetricWarning" in log or "Only one class" in log  # sklearn's one-class warning
    assert "printed to stdout" in log
    # on stderr: the progress bar and the warning raised after the job, nothing the log holds
    assert "progress-bar" in stderr and "progress-bar" not in log
    assert "after the job: not in its log" in stderr and "after the job" not in log
    for text in ("training labels are True", "constant score", "could not score", "UndefinedMetricWarning"):
        assert text not in stderr, text


def test_a_failure_is_logged_with_its_traceback(tmp_path):
    log = tmp_path / "job.log"
    code = textwrap.dedent(
        f"""
        import sys, types
        sys.path.insert(0, {str(ROOT / "workflow" / "scripts")!r})
        from _log import logged
        with logged(types.SimpleNamespace(log=[{str(log)!r}])):
            raise ValueError("data file results/data/x.parquet cannot be read")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    text = log.read_text()
    assert "Traceback" in text and "ValueError: data file results/data/x.parquet cannot be read" in text

"""Keep snakemake-executor-plugin-slurm off the default import path; load it only for SLURM runs.

Snakemake imports every installed executor plugin at start-up, and this plugin's import runs
`which sinfo/squeue/sacct` and `scontrol show config` to word the help text of one option: where
the SLURM client is installed but no controller answers, every `snakemake` call (a dry run, a
local run, `snakemake --version`) waits seconds for it, and it imports pandas (about 0.8 s on
2 cores) even where SLURM is absent.

Run by `make install` with the venv's Python (idempotent):

1. moves the plugin's package from site-packages to ``<venv>/slurm-plugin/`` (its dist-info stays,
   so pip still counts it and its dependencies as installed);
2. writes ``uqroute-slurm-plugin.pth`` into site-packages: at interpreter start it puts
   ``<venv>/slurm-plugin`` on ``sys.path`` only when the command line names SLURM
   (``--profile profiles/slurm``, ``--executor slurm``, any ``--slurm-*`` option, or a
   ``SNAKEMAKE_PROFILE`` naming it). ``UQROUTE_SLURM_PLUGIN=1`` forces it on (a site profile
   with another name), ``UQROUTE_SLURM_PLUGIN=0`` off.

The jobs a SLURM run submits run `snakemake --executor slurm-jobstep`, a separate plugin that
stays installed as usual.
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
from pathlib import Path

PACKAGE = "snakemake_executor_plugin_slurm"
PTH = "uqroute-slurm-plugin.pth"

# One line (a .pth file runs lines that start with `import`); no imports beyond os and sys.
GATE = (
    "import os, sys; "
    "_d = os.path.join(sys.prefix, 'slurm-plugin'); "
    "_f = os.environ.get('UQROUTE_SLURM_PLUGIN', ''); "
    "(_f == '1' or (_f != '0' and any('slurm' in a for a in sys.argv[1:] + [os.environ.get('SNAKEMAKE_PROFILE', '')]))) "
    "and os.path.isdir(_d) and _d not in sys.path and sys.path.append(_d)\n"
)


def main() -> int:
    site = Path(sysconfig.get_paths()["purelib"])
    target = Path(sys.prefix) / "slurm-plugin"
    installed = site / PACKAGE
    if installed.is_dir():
        target.mkdir(exist_ok=True)
        shutil.rmtree(target / PACKAGE, ignore_errors=True)
        shutil.move(str(installed), str(target / PACKAGE))
    elif not (target / PACKAGE).is_dir():
        print(f"{PACKAGE} is neither in {site} nor in {target}: install the workflow extra first", file=sys.stderr)
        return 1
    (site / PTH).write_text(GATE)
    print(f"{PACKAGE}: in {target}, on sys.path only for SLURM runs ({site / PTH})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

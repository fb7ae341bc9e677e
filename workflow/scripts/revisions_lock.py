import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))  # noqa: E702
from _log import logged

from uqroute.revisions import write_lock

sm = snakemake  # noqa: F821
with logged(sm):
    write_lock(
        sm.output[0],
        model_records=dict(zip(sm.params.models, sm.input.models)),
        data_paths=dict(zip(sm.params.datasets, sm.input.data)),
    )

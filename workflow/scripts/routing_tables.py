import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))  # noqa: E702
from _log import logged

from uqroute.routing import assemble_routing

sm = snakemake  # noqa: F821
with logged(sm):
    assemble_routing(
        proxy_paths=list(sm.input.proxy),
        warnings_paths=list(sm.input.warnings),
        slms=sm.params.slms,
        assembled=sm.params.assembled,
        llms=sm.params.llms,
        datasets=sm.params.datasets,
        methods=sm.params.methods,
        outputs=dict(sm.output.items()),
        params=sm.params.routing,
    )

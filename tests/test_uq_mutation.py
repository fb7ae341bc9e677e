"""Tests for the mutation run over ``uqroute.uq`` (docs/reliability.md, "Mutation run").

``_sample_graph_method`` is a factory: the module calls it once, at import, to build the
``jaccard_degree``, ``eigv`` and ``eccentricity`` scorers. A mutation tool that imports the module
before it activates a mutant therefore never runs that mutant through the module's scorers; the
test below builds a scorer inside the test, so a mutant of the factory is what it runs.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from uqroute.uq import methods
from uqroute.uq.similarity import degree_uncertainty, jaccard_matrix


def test_sample_graph_method_is_offset_plus_sign_times_the_uncertainty():
    samples = [["a b", "a b", "a c"], ["x", "y"], None, []]
    frame = pl.DataFrame({"samples": samples}, schema={"samples": pl.List(pl.String)})
    fn = methods._sample_graph_method(degree_uncertainty, sign=-1.0, offset=1.0)
    out = fn(frame)
    assert out.shape == (4,)
    assert out[0] == pytest.approx(1.0 - degree_uncertainty(jaccard_matrix(samples[0])))
    assert out[1] == pytest.approx(0.5)  # two disjoint samples: ΣW/m² = 2/4
    assert np.isnan(out[2]) and np.isnan(out[3])  # no samples: NaN, not 0
    plain = methods._sample_graph_method(degree_uncertainty, sign=2.0)(frame)
    assert plain[1] == pytest.approx(2.0 * 0.5)  # no offset by default

"""Property tests: shapes and broadcasting follow torch/TFP rules on every backend."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import asarray, to_numpy

import diaggauss as dg

pytest.importorskip("hypothesis")
stats = pytest.importorskip("scipy.stats")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def problems(draw):
    """loc and scale shapes that broadcast, with the event axis last, and a point."""
    d = draw(st.integers(1, 4))
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3))
    loc_batch, scale_batch = shapes.input_shapes
    # the event axis: full size, or 1 on one side (it broadcasts too)
    loc_event = draw(st.sampled_from([d, 1])) if d > 1 else 1
    scale_event = d if loc_event == 1 else draw(st.sampled_from([d, 1]))
    loc_shape = (*loc_batch, loc_event)
    scale_shape = (*scale_batch, scale_event)
    sample = draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=3))
    batch = np.broadcast_shapes(loc_batch, scale_batch)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    loc = rng.normal(size=loc_shape)
    scale = rng.uniform(0.2, 3.0, size=scale_shape)
    x = rng.normal(size=(*sample, *batch, d))
    return loc, scale, x, batch, d, sample


@SETTINGS
@given(problems())
def test_shapes_and_values_follow_broadcasting(xp, problem):
    loc, scale, x, batch, d, sample = problem
    dist = dg.MultivariateNormalDiag(asarray(xp, loc), asarray(xp, scale))
    assert dist.batch_shape == batch
    assert dist.event_shape == (d,)
    lp = dist.log_prob(asarray(xp, x))
    assert tuple(lp.shape) == (*sample, *batch)
    expected = stats.norm.logpdf(x, loc, scale).sum(-1)
    np.testing.assert_allclose(to_numpy(lp), expected, rtol=1e-10)
    assert tuple(dist.entropy().shape) == batch
    assert tuple(dist.mean.shape) == (*batch, d)
    assert tuple(dist.covariance().shape) == (*batch, d, d)


@SETTINGS
@given(problems(), st.integers(0, 2))
def test_kl_shape_is_broadcast_of_batches(xp, problem, drop):
    loc, scale, _, batch, d, _ = problem
    p = dg.MultivariateNormalDiag(asarray(xp, loc), asarray(xp, scale))
    q_batch = batch[drop:]
    q = dg.MultivariateNormalDiag(asarray(xp, np.zeros((*q_batch, d))), asarray(xp, np.ones(d)))
    assert tuple(p.kl_divergence(q).shape) == np.broadcast_shapes(batch, q_batch)
    assert tuple(q.kl_divergence(p).shape) == np.broadcast_shapes(batch, q_batch)


@SETTINGS
@given(problems())
def test_indexing_the_batch_matches_indexing_the_arrays(xp, problem):
    loc, scale, x, batch, d, _ = problem
    if not batch:
        return
    dist = dg.MultivariateNormalDiag(asarray(xp, loc), asarray(xp, scale))
    sub = dist[0]
    assert sub.batch_shape == batch[1:]
    full_loc = np.broadcast_to(loc, (*batch, d))
    full_scale = np.broadcast_to(scale, (*batch, d))
    xs = x.reshape(-1, *batch, d)[0][0]
    expected = stats.norm.logpdf(xs, full_loc[0], full_scale[0]).sum(-1)
    np.testing.assert_allclose(to_numpy(sub.log_prob(asarray(xp, xs))), expected, rtol=1e-10)

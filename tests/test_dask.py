"""Dask: lazy results, noise drawn on the workers, NumPy parameters with Dask data.

The cluster tests start a ``dask.distributed`` LocalCluster on 127.0.0.1 (two
worker processes with 256 MiB each) and close it; the data is larger than
one worker's memory limit, so it can only be processed chunk by chunk.
References are NumPy float64 formulas and the normal law's moments.
"""

from __future__ import annotations

import numpy as np
import pytest

da = pytest.importorskip("dask.array")

import diaggauss as dg  # noqa: E402

MVN = dg.MultivariateNormalDiag


def _embedded_bytes(a) -> int:
    """The largest NumPy array stored in `a`'s task graph (noise drawn in the client)."""
    graph = dict(a.__dask_graph__())
    return max((v.nbytes for v in graph.values() if isinstance(v, np.ndarray)), default=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sample_is_drawn_chunk_wise_on_the_workers(dtype):
    loc, scale = np.array([1.0, -2.0, 0.5], dtype), np.array([0.5, 2.0, 1.0], dtype)
    d = MVN(da.from_array(loc), da.from_array(scale))
    n = 1_000_000
    s = d.sample((n,), seed=7)
    assert isinstance(s, da.Array)
    assert s.dtype == dtype
    assert s.shape == (n, 3)
    assert _embedded_bytes(s) < 1024  # not the 24 MB of noise
    assert s.chunks[-1] == (3,)  # whole vectors per chunk
    v = s.compute().astype(np.float64)
    np.testing.assert_array_equal(v, d.sample((n,), seed=7).compute())  # a seed is a sample
    assert not np.array_equal(v[:10], d.sample((n,), seed=8).compute()[:10])
    se = scale / np.sqrt(n)
    assert np.all(np.abs(v.mean(0) - loc) < 6 * se)
    assert np.all(np.abs(v.std(0) - scale) < 6 * scale / np.sqrt(2 * n))


def test_sample_and_mixture_sample_stay_lazy_and_reproducible():
    d = MVN(da.zeros(2), da.ones(2))
    x, lp = d.sample_and_log_prob((1000,), seed=3)
    assert _embedded_bytes(x) < 1024
    want = -0.5 * (x.compute() ** 2).sum(-1) - np.log(2 * np.pi)
    np.testing.assert_allclose(lp.compute(), want, rtol=1e-12)
    m = dg.MixtureDiag(da.zeros(2), da.asarray([[-5.0, 0.0], [5.0, 0.0]]), da.ones((2, 2)))
    a = m.sample((4000,), seed=1)
    np.testing.assert_array_equal(a.compute(), m.sample((4000,), seed=1).compute())
    assert abs(float((a[:, 0] > 0).mean().compute()) - 0.5) < 6 * 0.5 / np.sqrt(4000)


def test_numpy_parameters_with_dask_data():
    rng = np.random.default_rng(0)
    loc, scale = rng.normal(size=(5, 4)), rng.uniform(0.5, 2, size=(5, 4))
    x = rng.normal(size=(100, 5, 4))
    got = MVN(loc, scale).log_prob(da.from_array(x, chunks=(10, 5, 4)))
    assert isinstance(got, da.Array)
    want = (-0.5 * ((x - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi)).sum(-1)
    np.testing.assert_allclose(got.compute(), want, rtol=1e-12)


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        memory_limit="256MiB",
        host="127.0.0.1",
        dashboard_address=None,
        processes=True,
    )
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


@pytest.mark.slow
def test_sample_larger_than_a_worker_on_a_local_cluster(client):
    """4e6 x 8 float64 (256 MB, one worker's whole limit): moments, client memory flat."""
    loc, scale = np.linspace(-1, 1, 8), np.linspace(0.5, 2, 8)
    d = MVN(da.from_array(loc), da.from_array(scale))
    n = 4_000_000
    before = _rss()
    s = d.sample((n,), seed=11)
    mean, sq = da.compute(s.mean(axis=0), ((s - loc) ** 2).mean(axis=0))
    grown = _rss() - before
    assert grown < 100 * 2**20, f"the client grew by {grown / 2**20:.0f} MiB"
    assert np.all(np.abs(mean - loc) < 6 * scale / np.sqrt(n))
    assert np.all(np.abs(sq - scale**2) < 6 * np.sqrt(2) * scale**2 / np.sqrt(n))


@pytest.mark.slow
def test_log_prob_on_a_local_cluster_agrees_with_numpy(client):
    rng = np.random.default_rng(1)
    loc, scale = rng.normal(size=16), rng.uniform(0.5, 2, size=16)
    x = da.random.default_rng(2).standard_normal((2_000_000, 16), chunks=(125_000, 16))
    total = MVN(loc, scale).log_prob(x).sum().compute()
    xs = x[:1000].compute()
    want_head = (-0.5 * ((xs - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi)).sum()
    got_head = MVN(loc, scale).log_prob(x[:1000]).sum().compute()
    np.testing.assert_allclose(got_head, want_head, rtol=1e-12)
    # the whole sum against the same formula computed chunk by chunk with Dask itself
    ref = (-0.5 * ((x - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi)).sum()
    np.testing.assert_allclose(total, ref.compute(), rtol=1e-10)

"""Dask: lazy results, noise drawn on the workers, NumPy parameters with Dask data.

The cluster tests start a ``dask.distributed`` LocalCluster on 127.0.0.1 (two
worker processes with 256 MiB each) and close it; the data is larger than
one worker's memory limit, so it can only be processed chunk by chunk.
References are NumPy float64 formulas and the normal law's moments.
"""

from __future__ import annotations

import contextlib

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


# -- fitting on a cluster: passes, laziness, client memory, agreement --------------------------

CENTRES = np.array([[-4.0] * 16, [0.0] * 16, [4.0] * 16])


def _chunk_of_blobs(block, rows, d, seed, dtype):
    """One chunk of three blobs, drawn on the worker from (seed, block); logs a chunk event."""
    import distributed

    i = int(block[0])
    with contextlib.suppress(ValueError):  # ValueError: computed outside a worker (NumPy's copy)
        distributed.get_worker().log_event(f"x-chunks-{seed}", i)
    rng = np.random.default_rng([seed, i])
    labels = rng.integers(0, 3, rows)
    centres = np.linspace(-4, 4, 3)[:, None] * np.ones(d)
    return (centres[labels] + rng.normal(size=(rows, d))).astype(dtype)


def _blobs_on_workers(n, d, seed, rows=62_500, dtype=np.float64):
    """(n, d) blobs made chunk by chunk on the workers (nothing of n's size in the graph)."""
    blocks = da.arange(n // rows, chunks=1)
    return blocks.map_blocks(
        _chunk_of_blobs, rows, d, seed, dtype,
        chunks=((rows,) * (n // rows), (d,)), new_axis=1, dtype=dtype,
    )  # fmt: skip


class _Graphs:
    """Records the size (tasks) of each graph the scheduler receives (one per compute)."""

    name = "diaggauss-graphs"

    def __init__(self):
        self.sizes = []

    def update_graph(self, scheduler, *, tasks=(), **kwargs):
        self.sizes.append(len(tasks))


@pytest.fixture(scope="module")
def counted(client):
    from distributed.diagnostics.plugin import SchedulerPlugin

    plugin = type("GraphCounter", (_Graphs, SchedulerPlugin), {})()
    client.register_plugin(plugin)

    def graphs():
        """The sizes of the graphs computed so far."""
        return client.run_on_scheduler(
            lambda dask_scheduler: dask_scheduler.plugins[_Graphs.name].sizes
        )

    def chunks(seed):
        import time

        # events reach the scheduler in batches: wait until the count settles
        last = -1
        for _ in range(50):
            now = len(client.get_events(f"x-chunks-{seed}"))
            if now == last:
                return now
            last = now
            time.sleep(0.2)
        return now

    return graphs, chunks


def _start(d=16, dtype=np.float64):
    loc = np.array([[-3.0] * d, [0.5] * d, [3.0] * d], dtype)
    return dg.MixtureDiag.from_variance(np.zeros(3, dtype), loc, np.full((3, d), 2.0, dtype))


@pytest.mark.slow
@pytest.mark.parametrize("iterations", [2, 6])
def test_em_reads_x_once_per_iteration(client, counted, iterations):
    """Passes over x: one for the centre, then exactly one per EM iteration; no more computes."""
    graphs, chunks = counted
    seed = 100 + iterations
    x = _blobs_on_workers(500_000, 16, seed)
    before = len(graphs())
    mix = dg.fit_mixture(x, 3, init=_start(), max_iter=iterations, tol=0.0)
    assert isinstance(mix.loc, da.Array)
    passes = chunks(seed) / x.numblocks[0]
    assert passes == 1 + iterations, f"{passes} passes over x for {iterations} iterations"
    # computes: the centre, the start (no x), one per iteration, each of the same graph:
    # an iteration starts from values, not from the graphs of the iterations before it
    sizes = graphs()[before:]
    assert len(sizes) == 2 + iterations
    assert sizes[2:] == [sizes[2]] * iterations, f"tasks per iteration: {sizes[2:]}"
    np.testing.assert_allclose(np.sort(mix.loc.compute()[:, 0]), [-4, 0, 4], atol=0.05)


@pytest.mark.slow
@pytest.mark.parametrize(("init", "k"), [("kmeans", 3), ("kmeans", 16), ("k-means++", 3),
                                         ("random_from_data", 3), ("random", 3)])  # fmt: skip
def test_initialisation_takes_a_bounded_number_of_passes(client, counted, init, k):
    _, chunks = counted
    seed = 200 + 20 * ["kmeans", "k-means++", "random_from_data", "random"].index(init) + k
    x = _blobs_on_workers(250_000, 16, seed)
    dg.fit_mixture(x, k, init=init, max_iter=0, seed=1)
    # less the centre's: the sample, the Lloyd passes, the start's M-step (the start's
    # score, FitInfo.log_likelihood, stays lazy: a pass when it is read)
    passes = chunks(seed) / x.numblocks[0] - 1
    assert passes <= 5 + np.log(k), f"{passes} passes to initialise {init!r}"
    assert passes == {"kmeans": 4, "random": 1}.get(init, 2)


@pytest.mark.slow
def test_fit_is_one_lazy_pass(client, counted):
    graphs, chunks = counted
    seed = 300
    x = _blobs_on_workers(500_000, 16, seed)
    before = len(graphs())
    d = dg.fit(x)
    assert isinstance(d.loc, da.Array)
    assert isinstance(d.scale, da.Array)
    assert len(graphs()) == before  # nothing computed yet
    assert chunks(seed) == 0
    loc, scale = da.compute(d.loc, d.scale)
    assert chunks(seed) == x.numblocks[0]  # one pass
    mean, std = da.compute(x.mean(axis=0), x.std(axis=0))
    np.testing.assert_allclose(loc, mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(scale, std, rtol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("init", ["kmeans", "random"])
def test_fit_mixture_of_x_larger_than_a_worker_keeps_the_client_flat(client, init):
    """2.2e6 x 16 float64 (282 MB, over a worker's limit): the client grows by under 100 MB."""
    import gc

    gc.collect()
    before = _rss()
    x = _blobs_on_workers(2_200_000, 16, 400, rows=50_000)
    assert x.nbytes > 256 * 2**20
    mix = dg.fit_mixture(x, 3, init=init, max_iter=2, seed=0)
    loc = mix.loc.compute()
    grown = _rss() - before
    assert grown < 100 * 2**20, f"the client grew by {grown / 2**20:.0f} MiB"
    assert loc.shape == (3, 16)
    assert np.all(np.isfinite(loc))
    if init == "kmeans":
        np.testing.assert_allclose(np.sort(loc[:, 0]), [-4, 0, 4], atol=0.05)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fit_mixture_on_the_cluster_agrees_with_numpy(client, dtype):
    """From the same start, the same mixture as NumPy's fit_mixture; fit agrees too."""
    x = _blobs_on_workers(200_000, 16, 500, rows=25_000, dtype=dtype)
    xn = x.compute(scheduler="sync")
    start = _start(dtype=dtype)
    got, info = dg.fit_mixture(x, 3, init=start, max_iter=8, tol=0.0, return_info=True)
    want, ref = dg.fit_mixture(xn, 3, init=start, max_iter=8, tol=0.0, return_info=True)
    rtol = 1e-9 if dtype == np.float64 else 2e-5
    assert got.loc.dtype == dtype
    np.testing.assert_allclose(got.loc.compute(), want.loc, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(
        got.components.variance.compute(), want.components.variance, rtol=rtol
    )
    np.testing.assert_allclose(got.logits.compute(), want.logits, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(info.history, ref.history, rtol=rtol)
    np.testing.assert_allclose(info.log_likelihood, ref.log_likelihood, rtol=rtol)
    f, fn = dg.fit(x), dg.fit(xn)
    np.testing.assert_allclose(f.loc.compute(), fn.loc, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(f.scale.compute(), fn.scale, rtol=rtol)


@pytest.mark.slow
def test_fit_mixture_on_the_cluster_is_reproducible(client):
    x = _blobs_on_workers(100_000, 16, 600, rows=25_000)
    for init in ("kmeans", "random", "random_from_data"):
        a = dg.fit_mixture(x, 3, init=init, max_iter=3, seed=5).loc.compute()
        b = dg.fit_mixture(x, 3, init=init, max_iter=3, seed=5).loc.compute()
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_estimator_on_dask_data(client):
    x = _blobs_on_workers(200_000, 16, 700, rows=25_000)
    xn = x.compute(scheduler="sync")
    start = _start()
    kw = {
        "n_components": 3,
        "weights_init": np.full(3, 1 / 3),
        "means_init": start.loc,
        "precisions_init": 1 / start.components.variance,
        "max_iter": 50,
    }
    est = dg.GaussianMixtureDiag(**kw).fit(x)
    ref = dg.GaussianMixtureDiag(**kw).fit(xn)
    assert isinstance(est.means_, da.Array)
    np.testing.assert_allclose(est.means_.compute(), ref.means_, rtol=1e-9, atol=1e-9)
    labels = est.predict(x)
    assert isinstance(labels, da.Array)
    np.testing.assert_array_equal(labels.compute(), ref.predict(xn))
    np.testing.assert_allclose(float(est.score(x)), ref.score(xn), rtol=1e-9)
    default = dg.GaussianMixtureDiag(3, random_state=0).fit(x)
    np.testing.assert_allclose(np.sort(default.means_.compute()[:, 0]), [-4, 0, 4], atol=0.05)


@pytest.mark.parametrize("init", ["start", "kmeans", "random"])
def test_weighted_fit_mixture_agrees_with_numpy(init):
    """Weights chunked unlike x; from the same start, NumPy's EM; from Dask's own, as good."""
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(-3, 1, (3000, 4)), rng.normal(3, 0.5, (3000, 4))])
    w = rng.uniform(0, 2, len(x))
    xd, wd = da.from_array(x, chunks=(700, 4)), da.from_array(w, chunks=500)
    given = dg.MixtureDiag.from_variance(
        np.zeros(2), np.array([[-1.0] * 4, [1.0] * 4]), np.ones((2, 4))
    )
    kw = {"init": given if init == "start" else init, "seed": 0, "return_info": True}
    got, info = dg.fit_mixture(xd, 2, weights=wd, **kw)
    want, ref = dg.fit_mixture(x, 2, weights=w, **kw)
    if init == "start":
        np.testing.assert_allclose(got.loc.compute(), want.loc, rtol=1e-9)
        np.testing.assert_allclose(info.history, ref.history, rtol=1e-10)
        np.testing.assert_allclose(info.log_likelihood, ref.log_likelihood, rtol=1e-10)
    else:  # other draws: a start as good (NumPy's "random" stalls at the symmetric point here)
        assert info.log_likelihood >= ref.log_likelihood - 1e-6
    f, fn = dg.fit(xd, wd), dg.fit(x, w)
    np.testing.assert_allclose(f.loc.compute(), fn.loc, rtol=1e-12)
    np.testing.assert_allclose(f.scale.compute(), fn.scale, rtol=1e-12)


def test_float32_tight_components_far_from_the_centre_agree_with_numpy():
    """A component of spread 1e-3 at 1e3 in float32: the exact variances and float64 E-steps."""
    rng = np.random.default_rng(4)
    centres = np.array([[0.0, 0.0], [1e3, 1e3], [-1e3, 5.0]])
    x = np.concatenate(
        [rng.normal(c, s, (400, 2)) for c, s in zip(centres, [1, 1e-3, 1], strict=True)]
    )
    x = x.astype(np.float32)
    start = dg.MixtureDiag.from_variance(
        np.zeros(3, np.float32), centres.astype(np.float32), np.ones((3, 2), np.float32)
    )
    got = dg.fit_mixture(da.from_array(x, chunks=(150, 2)), 3, init=start, max_iter=5, tol=0.0)
    want = dg.fit_mixture(x.astype(np.float64), 3, init=start, max_iter=5, tol=0.0)
    np.testing.assert_allclose(got.loc.compute(), want.loc, rtol=1e-6, atol=1e-4)
    var = got.components.variance.compute()
    np.testing.assert_allclose(var, want.components.variance, rtol=1e-3)

"""The scale-out row: EM on a Dask LocalCluster against NumPy in memory (``bench --scale``).

One process is the client; it starts two LocalClusters on 127.0.0.1 (one
worker, two workers; one thread each) and persists the same float32 data on
each, so a pass reads x from worker memory as NumPy reads it from its own.
One iteration is what `diaggauss.fit_mixture` runs per iteration: NumPy's
``em_step`` on the design built once; on Dask the design rebuilt per chunk,
the step, and the one compute that settles its (K, d) results. The three are
timed in interleaved rounds. Then the client's peak memory is measured
across a whole default fit (k-means start) on the two-worker cluster.

Every process runs one BLAS thread, so "per worker" compares a core with a core.
"""

from __future__ import annotations

import gc

# (N, K, d) of the row; the --tiny run (tests) makes it small.
SCALE_CONFIG = [(2_000_000, 8, 32)]
QUICK_SCALE_CONFIG = [(500_000, 8, 32)]
# Rows per chunk of the persisted data.
CHUNK_ROWS = 125_000
# The goals of issue 14.
ROWS_PER_WORKER_GOAL = 0.7
CLIENT_PEAK_GOAL_BYTES = 100 * 10**6


def _cluster(workers):
    import distributed

    cluster = distributed.LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        memory_limit="3GiB",
        silence_logs=50,
    )
    return cluster, distributed.Client(cluster, set_as_default=False)


def scale_case(quick: bool):
    """The row's callable: runs the clusters, returns the row group."""

    def run():
        n, k, d = (QUICK_SCALE_CONFIG if quick else SCALE_CONFIG)[0]
        return _row(n, k, d, quick)

    return run


def _chunk_of_points(block, rows, d):
    import numpy as np

    rng = np.random.default_rng([0, int(block[0])])
    return rng.standard_normal((rows, d), dtype=np.float32)


def _points(n, d):
    """(n, d) standard normal float32 drawn chunk by chunk where it is computed."""
    import dask.array as da
    import numpy as np

    rows = min(CHUNK_ROWS, n)
    return da.arange(n // rows, chunks=1).map_blocks(
        _chunk_of_points, rows, d, chunks=((rows,) * (n // rows), (d,)), new_axis=1,
        dtype=np.float32,
    )  # fmt: skip


def _row(n, k, d, quick):
    import dask.array as da
    import distributed
    import numpy as np

    import diaggauss as dg
    from diaggauss._em import design, em_step
    from diaggauss._gaps import gaps_for
    from diaggauss._namespace import get_namespace

    from ._cases import _pairwise_data, measure
    from ._memory import _reset_peak, _status

    _, loc, scale = _pairwise_data(8, k, d)
    points = _points(n, d)
    xn = points.compute(scheduler="sync")
    start = dg.MixtureDiag(np.zeros(k, np.float32), loc, scale)
    npx = get_namespace(("x", xn))
    center = np.mean(xn, axis=0, keepdims=True)
    xa, _ = design(xn, center, xp=npx)
    w = np.ones(n, np.float32)
    params = (start.logits, start.loc - center, start.components.variance)

    def numpy_step():
        return em_step(xa, w, *params, 1e-6, xp=npx)

    clusters, impls = [], {"NumPy in memory": numpy_step}
    try:
        for workers in (1, 2):
            cluster, client = _cluster(workers)
            clusters.append((cluster, client))
            with client.as_current():
                client.wait_for_workers(workers)
                x = points.persist()  # drawn on the workers, kept there
                distributed.wait(x)
                dxp = get_namespace(("x", x))
                dc, dw = da.from_array(center), da.ones(n, chunks=x.chunks[0], dtype=np.float32)
                dparams = tuple(da.from_array(np.asarray(p)) for p in params)
            impls[f"Dask, {workers} worker{'s' * (workers > 1)}"] = _dask_step(
                client, x, dc, dw, dparams, dxp, design, em_step, gaps_for(dxp)
            )
        row = measure(
            backend="scale",
            device="cpu",
            op="EM iteration",
            mode=f"N={n}, K={k}, d={d}, float32, LocalCluster on 127.0.0.1 vs NumPy",
            shape=(n, k, d),
            impls=impls,
            refs=["NumPy in memory"],
            goals=[],
            heavy=True,
            quick=quick,
        )
        cluster, client = clusters[-1]
        with client.as_current():
            gc.collect()
            reset = _reset_peak()  # the peak from here: what the fit adds to the client
            before = _status("VmRSS")
            dg.fit_mixture(x, k, seed=0, max_iter=3)
            peak = _status("VmHWM") - before
    finally:
        for cluster, client in clusters:
            client.close()
            cluster.close()
    _add_goals(row, n, peak if reset else None)
    return row


def _dask_step(client, x, center, w, params, xp, design, em_step, gaps):
    def step():
        with client.as_current():
            xa, _ = design(x, center, xp=xp)
            return gaps.settle(*em_step(xa, w, *params, 1e-6, xp=xp))

    return step


def _add_goals(row, n, peak):
    """Rows per second (per worker) against NumPy's, and the client's peak memory."""
    res = row["results"]
    t_np = res["NumPy in memory"]["time_s"]
    notes = []
    for name, r in res.items():
        workers = 1 if name == "NumPy in memory" else int(name.split(", ")[1].split()[0])
        r["rows_per_s"] = n / r["time_s"]
        r["iterations_per_s"] = 1 / r["time_s"]
        per = t_np / (r["time_s"] * workers)
        notes.append(
            f"{name}: {r['iterations_per_s']:.3g} iterations/s, {r['rows_per_s']:.3g} rows/s"
            + ("" if name == "NumPy in memory" else f", {per:.2f}x NumPy's rows/s per worker")
        )
        if name != "NumPy in memory":
            # the goal as a time ratio: seconds per row and worker over NumPy's
            goal = _time_goal(name, r["time_s"] * workers / t_np)
            row["goals"].append(goal)
    if peak is not None:
        notes.append(f"client peak memory of a default fit: +{peak / 2**20:.1f} MiB")
        row["goals"].append(
            {
                "impl": "client peak memory (Dask, 2 workers)",
                "ref": "100 MB",
                "max_ratio": 1.0,
                "source": "issue 14",
                "measured": peak / CLIENT_PEAK_GOAL_BYTES,
                "met": peak <= CLIENT_PEAK_GOAL_BYTES,
            }
        )
    row["notes"] = notes


def _time_goal(name, measured):
    limit = round(1 / ROWS_PER_WORKER_GOAL, 3)
    return {
        "impl": f"{name} x workers",
        "ref": "NumPy in memory (>= 0.7x rows/s per worker)",
        "max_ratio": limit,
        "source": "issue 14",
        "measured": measured,
        "met": measured <= limit,
    }

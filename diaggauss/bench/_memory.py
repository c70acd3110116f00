"""Peak memory one call adds, in this fresh process: ``python -m diaggauss.bench._memory``.

Prints the growth of the peak resident set size (bytes) across one call of
the named implementation on float32 data of the given size.
"""

from __future__ import annotations

import resource
import sys


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # kB
    raise KeyError(field)


def _reset_peak() -> bool:
    """Reset the peak resident set size (Linux >= 4.0); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def main(argv=None) -> int:
    backend, impl, n, k, d = (argv or sys.argv[1:])[:5]
    n, k, d = int(n), int(k), int(d)
    from diaggauss.bench._cases import _pairwise_data

    x, loc, scale = _pairwise_data(n, k, d)
    import diaggauss as dg

    if backend == "torch":
        import torch

        x, loc, scale = torch.from_numpy(x), torch.from_numpy(loc), torch.from_numpy(scale)
    if impl == "diaggauss":
        dg.pairwise_log_prob(x[:8], loc, scale)  # imports and caches, not the measurement

        def call():
            return dg.pairwise_log_prob(x, loc, scale)

    elif impl == "gemm":
        _ = x[:8] @ loc.T

        def call():
            return x @ loc.T

    elif impl == "sklearn":
        import numpy as np
        from sklearn.mixture._gaussian_mixture import _estimate_log_gaussian_prob

        xn, ln, sn = (np.asarray(a) for a in (x, loc, scale))
        _estimate_log_gaussian_prob(xn[:8], ln, 1.0 / sn, "diag")

        def call():
            return _estimate_log_gaussian_prob(xn, ln, 1.0 / sn, "diag")

    else:
        raise SystemExit(f"unknown implementation {impl!r}")
    # The BLAS keeps per-thread work buffers from its first threaded product on;
    # start every implementation after one, so only the call's own memory counts.
    warm = (x[:32768] @ loc.T) if backend == "torch" else None
    if backend != "torch":
        import numpy as np

        warm = np.asarray(x)[:32768] @ np.asarray(loc).T
    del warm
    import gc

    gc.collect()
    if _reset_peak():
        # the peak is reset to the current size: growth of the peak is the call's extra memory
        before = _status("VmRSS")
        out = call()
        after = _status("VmHWM")
    else:  # the lifetime peak may hide the call: an underestimate, say so on stderr
        print("bench: peak RSS cannot be reset; figure is a lower bound", file=sys.stderr)
        before = _maxrss()
        out = call()
        after = _maxrss()
    del out
    print(max(after - before, 0))
    return 0


if __name__ == "__main__":
    sys.exit(main())

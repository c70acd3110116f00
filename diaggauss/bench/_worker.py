"""One backend's benchmark rows, in this process: ``python -m diaggauss.bench._worker``.

Prints ``{"count": n}`` first, then one JSON row group per line on stdout;
a row that cannot run prints ``{"skip": reason}`` instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback

from . import _cases


def cases_for(backend: str, quick: bool, device: str):
    if backend == "torch":
        return list(_cases.torch_cases(quick, device))
    if backend == "jax":
        return list(_cases.jax_cases(quick))
    if backend == "numpy":
        return list(_cases.numpy_cases(quick))
    if backend == "pairwise-torch":
        return list(_cases.pairwise_cases("torch", quick))
    if backend == "pairwise-numpy":
        return list(_cases.pairwise_cases("numpy", quick))
    if backend == "python":
        return [_cases.import_time_case(quick)]
    if backend == "scale":
        from . import _scale

        return [_scale.scale_case(quick)]
    raise SystemExit(f"unknown backend {backend!r}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m diaggauss.bench._worker")
    parser.add_argument("backend")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tiny", action="store_true", help="one small shape per row (tests)")
    args = parser.parse_args(argv)
    if args.tiny:
        _cases.SHAPES[:] = _cases.QUICK_SHAPES[:] = [(1, 2)]
        _cases.PAIRWISE_CONFIGS[:] = _cases.QUICK_PAIRWISE_CONFIGS[:] = [(200, 4, 3)]
        from . import _scale

        _scale.SCALE_CONFIG[:] = _scale.QUICK_SCALE_CONFIG[:] = [(20_000, 4, 8)]
        _scale.CHUNK_ROWS = 5_000
    cases = cases_for(args.backend, args.quick or args.tiny, args.device)
    print(json.dumps({"count": len(cases)}), flush=True)
    for case in cases:
        try:
            row = case()
        except _cases.Skip as e:
            row = {"skip": str(e)}
        except Exception as e:  # one broken peer must not sink the run
            traceback.print_exc(file=sys.stderr)
            row = {"skip": f"{type(e).__name__}: {e}"}
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the parent reports the interruption, in one line
        sys.exit(130)

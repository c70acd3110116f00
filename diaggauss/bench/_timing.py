"""Interleaved timing: every figure is a ratio to a rival measured in the same rounds.

Absolute times on shared machines drift by 2-4x between runs; ratios of
candidates timed in alternation, round by round, hold. Each round runs a
block of calls of every candidate in turn (the order rotates between rounds),
and the result keeps each candidate's per-round time, its median, and the
median over rounds of its time divided by each other candidate's in the same
round.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable

__all__ = ["Timing", "compare"]


class Timing(dict):
    """Seconds per call by candidate, with per-round samples and paired ratios.

    ``timing[name]`` is the median seconds per call; ``timing.ratio(a, b)`` the
    median over rounds of ``time(a) / time(b)``.
    """

    def __init__(self, samples: dict[str, list[float]]):
        super().__init__({k: statistics.median(v) for k, v in samples.items()})
        self.samples = samples

    def ratio(self, a: str, b: str) -> float:
        """Median over rounds of ``time(a) / time(b)`` (both timed in each round)."""
        # rounds pair up by index; a candidate timed in fewer rounds of its own (a
        # slow peer) pairs with the first ones
        pairs = [x / y for x, y in zip(self.samples[a], self.samples[b], strict=False) if y > 0]
        return statistics.median(pairs) if pairs else float("nan")


def _autorange(fn: Callable[[], object], target: float) -> int:
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= target or number >= 1 << 20:
            return max(1, int(number * target / max(elapsed, 1e-9)))
        number *= 4 if elapsed < target / 8 else 2


def compare(
    candidates: dict[str, Callable[[], object]],
    *,
    rounds: int = 15,
    block_time: float = 0.02,
    max_time: float | None = None,
) -> Timing:
    """Time `candidates` in interleaved rounds.

    Parameters
    ----------
    candidates : dict of name -> zero-argument callable
        Each call must finish its work (block on the device) before returning.
    rounds : int
        Number of rounds; each gives every candidate one block.
    block_time : float
        Target seconds per block; the number of calls per block is chosen once,
        per candidate, after a warm-up.
    max_time : float, optional
        Stop adding rounds (keeping at least 3) once this many seconds passed.

    Returns
    -------
    Timing
    """
    numbers = {}
    for name, fn in candidates.items():
        fn()  # warm-up: compilation, caches, lazy imports
        numbers[name] = _autorange(fn, block_time)
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    names = list(candidates)
    start = time.perf_counter()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                fn, number = candidates[name], numbers[name]
                t0 = time.perf_counter()
                for _ in range(number):
                    fn()
                samples[name].append((time.perf_counter() - t0) / number)
            if max_time is not None and r >= 2 and time.perf_counter() - start > max_time:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return Timing(samples)

"""NumPy's whole-kernel overrides: validation of a few values, the blocked pairwise product.

Each replaces one kernel of the core with the same signature, for NumPy
arrays only; `tests/test_overrides.py` compares each with the generic kernel
on both sides of its threshold.
"""

from __future__ import annotations

import numpy as np

from diaggauss import _pairwise, _validation
from diaggauss._dispatch import override

from . import GAPS

# Up to this many parameter values, validation reads them as Python floats:
# cheaper than launching reductions (the per-step case of RL and VAE loops).
FEW_VALUES = 64
# Values of the expanded rows [(x - c)**2, x - c, 1] per block of the pairwise
# product (2 MB in float32: the block stays in cache between being written and
# being multiplied).
CHUNK_ELEMENTS = 1 << 19


@override(_validation.values_ok, GAPS)
def values_ok(loc, param, domain, *, xp) -> bool:
    """`diaggauss._validation.values_ok`, on Python floats for a few values."""
    if loc.size + param.size > FEW_VALUES:
        return _validation.values_ok.generic(loc, param, domain, xp=xp)
    return _validation.few_values_ok(loc.tolist(), param.tolist(), domain)


@override(_pairwise.quadratic_product, GAPS)
def quadratic_product(x, center, b_t, *, reach=False, chunk_rows=None, xp):
    """`diaggauss._pairwise.quadratic_product` in blocks of rows, into a preallocated result.

    The expanded rows of one block are the only temporary (allocated once per
    call), so memory stays at the output plus one block.
    """
    *lead, n, d = x.shape
    width = 2 * d + 1
    # the running maximum's d columns count against the block's memory too
    rows = chunk_rows or max(1, CHUNK_ELEMENTS // (width + (d if reach else 0)))
    k = b_t.shape[-1]
    out = np.empty((*lead, n, k), dtype=np.result_type(x.dtype, b_t.dtype))
    block = np.empty((*lead, min(rows, n), width), dtype=x.dtype)
    block[..., 2 * d] = 1.0
    top = None
    for i in range(0, n, rows):
        j = min(i + rows, n)
        buf = block[..., : j - i, :]
        xc, sq = buf[..., d : 2 * d], buf[..., :d]
        np.subtract(x[..., i:j, :], center, out=xc)
        np.multiply(xc, xc, out=sq)
        if reach:
            # elementwise while the blocks stream, one reduction at the end (a
            # reduction per block over the row axis cost twice as much)
            if top is None:
                top = sq.copy()
            else:
                head = top[..., : j - i, :]
                np.maximum(head, sq, out=head)
        np.matmul(buf, b_t, out=out[..., i:j, :])
    return out, (top.max(axis=-2, keepdims=True) if reach else None)

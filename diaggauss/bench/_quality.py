"""``python -m diaggauss bench --quality``: fitted log-likelihoods against scikit-learn's.

Each data set is split 3:1 into train and held-out points (scikit-learn's
``train_test_split``, ``random_state=0``); `GaussianMixtureDiag` and
scikit-learn's ``GaussianMixture(covariance_type="diag")`` fit the train
points from seeds 0-4 with the same settings (scikit-learn's defaults), on
NumPy in one process, and the table gives the medians over the seeds of
the mean log-likelihood per point (``score``) on both parts. Digits also
over 60 seeds: its held-out score turns on a few pixels outside every
component's support, so five seeds are a coin toss there.

Examples
--------
>>> from diaggauss.bench._quality import DATASETS
>>> [name for name, *_ in DATASETS][:2]
['digits', 'iris']
"""

from __future__ import annotations

import time
import warnings

__all__ = ["DATASETS", "format_quality", "run_quality"]

# (name, K, dtype, seeds); blobs as the speed rows draw them (`_cases._fit_data`)
DATASETS = [
    ("digits", 10, "float64", 5),
    ("digits", 10, "float64", 60),
    ("iris", 3, "float64", 5),
    ("wine", 3, "float64", 5),
    ("breast_cancer", 2, "float64", 5),
    ("blobs 200000 x 32", 16, "float32", 5),
    ("blobs 200000 x 32", 16, "float64", 5),
    ("blobs 1000000 x 64", 64, "float32", 5),
]
TINY = [("iris", 3, "float64", 2), ("blobs 300 x 3", 2, "float64", 2)]


def _data(name, k, dtype):
    if name.startswith("blobs"):
        from ._cases import _fit_data

        n, d = (int(v) for v in name.split()[1::2])
        return _fit_data("blobs", n, d, k, dtype)
    from sklearn import datasets

    x = getattr(datasets, f"load_{name}")().data
    # digits' 8-bit pixels as they are; the others standardised, as a user would
    x = x if name == "digits" else (x - x.mean(0)) / x.std(0)
    return x.astype(dtype)


def run_quality(tiny: bool = False, progress=None) -> list[dict]:
    """Fit every data set of `DATASETS` (or a tiny pair) and return one row each."""
    import numpy as np
    from sklearn.mixture import GaussianMixture
    from sklearn.model_selection import train_test_split

    import diaggauss as dg

    rows = []
    for name, k, dtype, seeds in TINY if tiny else DATASETS:
        train, test = train_test_split(_data(name, k, dtype), test_size=0.25, random_state=0)
        scores = {"diaggauss": [], "scikit-learn": []}
        diag = {"covariance_type": "diag"}
        seconds = {"diaggauss": 0.0, "scikit-learn": 0.0}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scikit-learn's ConvergenceWarning on hard data
            for seed in range(seeds):
                for who, model in (
                    ("diaggauss", dg.GaussianMixtureDiag(k, random_state=seed)),
                    ("scikit-learn", GaussianMixture(k, random_state=seed, **diag)),
                ):
                    start = time.perf_counter()
                    gm = model.fit(train)
                    seconds[who] += time.perf_counter() - start
                    scores[who].append((float(gm.score(train)), float(gm.score(test))))
        med = {who: np.median(np.array(v), axis=0) for who, v in scores.items()}
        rows.append(
            {
                "data": f"{name}, {dtype}, K={k}",
                "seeds": seeds,
                "train": [float(med["diaggauss"][0]), float(med["scikit-learn"][0])],
                "held_out": [float(med["diaggauss"][1]), float(med["scikit-learn"][1])],
                "seconds": [seconds["diaggauss"], seconds["scikit-learn"]],
            }
        )
        if progress is not None:
            progress(rows[-1])
    return rows


def format_quality(rows) -> str:
    """The rows as a Markdown table; "at least" allows 1e-3 (tol: where EM stops).

    The fit times (``seconds``, in the JSON) are not a speed measurement: the
    speed rows of ``bench`` time fits in interleaved rounds.
    """
    lines = [
        "| data | seeds | train: diaggauss | scikit-learn | held out: diaggauss | "
        "scikit-learn | at least scikit-learn's |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ok = r["train"][0] >= r["train"][1] - 1e-3 and r["held_out"][0] >= r["held_out"][1] - 1e-3
        lines.append(
            f"| {r['data']} | {r['seeds']} | {r['train'][0]:.4f} | {r['train'][1]:.4f} | "
            f"{r['held_out'][0]:.4f} | {r['held_out'][1]:.4f} | {'yes' if ok else '**no**'} |"
        )
    return "\n".join(lines)

"""The noise floor of per-feature PSI: how large the worst of many features gets on a
stream with no drift at all, and how large one shifted feature gets (docs/mqtt-api.md).

Reference histograms are built the way the trainer builds them (quantile bins of a
standard normal sample of ``m`` rows, cloud/data/reference.py); live windows are binned on
the same edges and scored with the device's own ``psi_rows`` (edge/serving/drift.py).

    python -m cloud.bench.drift_noise [--features 30] [--trials 400]
"""

from __future__ import annotations

import argparse

import numpy as np

from cloud.data.reference import histogram, quantile_edges
from edge.serving.drift import psi_rows

WINDOW = 1000  # the agent's drift window
MIN_SAMPLES = 200  # inputs before the agent reports a score
THRESHOLDS = (0.2, 0.25, 0.3, 0.35)


def _reference(rng: np.random.Generator, m: int, f: int) -> tuple[list[np.ndarray], np.ndarray]:
    x = rng.normal(size=(m, f))
    edges = [np.asarray(quantile_edges(x[:, j])) for j in range(f)]
    expected = np.array([histogram(x[:, j], list(edges[j])) for j in range(f)], dtype=float)
    return edges, expected


def _bins(edges: list[np.ndarray], live: np.ndarray) -> np.ndarray:
    """Bin index of every value (out-of-range values in the end bins, as on the device)."""
    return np.stack(
        [e[1:-1].searchsorted(live[:, j], side="right") for j, e in enumerate(edges)], 1
    )


def _scores(idx: np.ndarray, k: int) -> np.ndarray:
    return np.stack([np.bincount(idx[:, j], minlength=k) for j in range(idx.shape[1])])


def worst_of_features(m: int, n: int, f: int, trials: int, seed: int = 0) -> np.ndarray:
    """Max-over-features PSI of ``trials`` unshifted windows of ``n`` inputs."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(trials):
        edges, expected = _reference(rng, m, f)
        counts = _scores(_bins(edges, rng.normal(size=(n, f))), expected.shape[1])
        out.append(psi_rows(counts, expected).max())
    return np.asarray(out)


def stream_false_alarms(m: int, f: int, trials: int, length: int = 3000, every: int = 50,
                        seed: int = 1) -> dict[float, float]:  # fmt: skip
    """Share of unshifted streams whose worst feature ever crosses each threshold, scored
    every ``every`` inputs from ``MIN_SAMPLES`` on, over a sliding ``WINDOW``."""
    rng = np.random.default_rng(seed)
    hits = dict.fromkeys(THRESHOLDS, 0)
    for _ in range(trials):
        edges, expected = _reference(rng, m, f)
        idx = _bins(edges, rng.normal(size=(length, f)))
        worst = max(
            psi_rows(_scores(idx[max(0, end - WINDOW) : end], expected.shape[1]), expected).max()
            for end in range(MIN_SAMPLES, length + 1, every)
        )
        for t in THRESHOLDS:
            hits[t] += bool(worst > t)
    return {t: h / trials for t, h in hits.items()}


def shifted(m: int, n: int, f: int, by: float, trials: int, seed: int = 2) -> tuple[float, float]:
    """Median PSI of one feature shifted by ``by`` std, and the median mean over features."""
    rng = np.random.default_rng(seed)
    one, mean = [], []
    for _ in range(trials):
        edges, expected = _reference(rng, m, f)
        live = rng.normal(size=(n, f))
        live[:, 0] += by
        p = psi_rows(_scores(_bins(edges, live), expected.shape[1]), expected)
        one.append(p[0])
        mean.append(p.mean())
    return float(np.median(one)), float(np.median(mean))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", type=int, default=30)
    ap.add_argument("--trials", type=int, default=400)
    args = ap.parse_args(argv)
    f, trials = args.features, args.trials
    print(f"worst of {f} features, no drift (PSI; {trials} windows each)\n")
    print("| reference rows | window | bias (k-1)(1/n+1/m) | median | p95 | p99 | max |")
    print("|---|---|---|---|---|---|---|")
    for m in (397, 2000):
        for n in (MIN_SAMPLES, WINDOW):
            w = worst_of_features(m, n, f, trials)
            q = np.quantile(w, [0.5, 0.95, 0.99])
            print(f"| {m} | {n} | {9 * (1 / n + 1 / m):.3f} | {q[0]:.3f} | {q[1]:.3f} | "
                  f"{q[2]:.3f} | {w.max():.3f} |")  # fmt: skip
    print(f"\nstreams of 3000 inputs that ever alert on the worst feature ({trials // 2} each)\n")
    print("| reference rows | " + " | ".join(f"> {t}" for t in THRESHOLDS) + " |")
    print("|---|" + "---|" * len(THRESHOLDS))
    for m in (397, 2000):
        rates = stream_false_alarms(m, f, trials // 2)
        print(f"| {m} | " + " | ".join(f"{rates[t]:.1%}" for t in THRESHOLDS) + " |")
    print(f"\none feature shifted, window {MIN_SAMPLES}, reference 397 rows ({trials // 4} each)\n")
    print("| shift (std) | PSI of that feature | mean PSI over features |")
    print("|---|---|---|")
    for by in (0.5, 0.75, 1.0, 2.0):
        one, mean = shifted(397, MIN_SAMPLES, f, by, trials // 4)
        print(f"| {by} | {one:.2f} | {mean:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

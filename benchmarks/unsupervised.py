"""k-means and PCA: dlnotes.unsupervised vs scikit-learn, time and quality side by side.

    .venv/bin/python benchmarks/unsupervised.py [--repeats=5] [--components=50]

k-means: all 1797 digits (x/16, 64 features), k = 10, 10 k-means++ initializations. Ours:
``unsupervised.kmeans`` (the 10 inits vmapped, Lloyd in a ``lax.while_loop``, the best kept) jitted
once, then timed with a fresh key per round. scikit-learn: ``KMeans(10, n_init=10)`` (k-means++,
Lloyd, a fresh ``random_state`` per round). Both report the inertia of the best init.
Targets (issue 13): inertia within 0.5% of scikit-learn's, time ≤ 1× scikit-learn's.

PCA: a random 10 000 × 784 float32 matrix, ``--components`` components. Ours: ``unsupervised.pca``
("auto": the d × d eigendecomposition as n ≥ 10 d), jitted; scikit-learn: ``PCA(n_components)``
(``svd_solver="auto"`` picks its covariance-eigh solver here). Explained variances compared.

Rounds interleave ours and scikit-learn (``harness.compare``); the median per-round ratio is the result.
Writes ``benchmarks/results/unsupervised.json``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def kmeans_fns():
    import jax
    import jax.numpy as jnp
    from sklearn.cluster import KMeans
    from sklearn.datasets import load_digits

    from dlnotes import unsupervised as U

    X = (load_digits().data / 16.0).astype(np.float32)
    Xj = jnp.asarray(X)
    run = jax.jit(lambda key: U.kmeans(key, Xj, 10, n_init=10))
    t0 = time.perf_counter()
    jax.block_until_ready(run(jax.random.key(0)))
    compile_s = time.perf_counter() - t0
    inertia = {"ours": [], "scikit-learn": []}
    n_iter = []
    state = {"r": 0}

    def ours():
        state["r"] += 1
        t0 = time.perf_counter()
        res = jax.block_until_ready(run(jax.random.key(state["r"])))
        dt = time.perf_counter() - t0
        inertia["ours"].append(float(res.inertia))
        n_iter.append(int(res.n_iter))
        return dt

    def sk():
        t0 = time.perf_counter()
        km = KMeans(10, n_init=10, random_state=state["r"]).fit(X)
        dt = time.perf_counter() - t0
        inertia["scikit-learn"].append(float(km.inertia_))
        return dt

    return {"ours (jit, vmapped inits)": ours, "scikit-learn KMeans(n_init=10)": sk}, inertia, compile_s, n_iter


def pca_fns(components: int):
    import jax
    import jax.numpy as jnp
    from sklearn.decomposition import PCA

    from dlnotes import unsupervised as U

    A = np.random.default_rng(0).standard_normal((10_000, 784)).astype(np.float32)
    Aj = jnp.asarray(A)
    run = jax.jit(lambda a: U.pca(a, components))
    t0 = time.perf_counter()
    jax.block_until_ready(run(Aj))
    compile_s = time.perf_counter() - t0
    out = {}

    def ours():
        t0 = time.perf_counter()
        out["ours"] = jax.block_until_ready(run(Aj))
        return time.perf_counter() - t0

    def sk():
        t0 = time.perf_counter()
        out["scikit-learn"] = PCA(components).fit(A)
        return time.perf_counter() - t0

    return {"ours (jit)": ours, f"scikit-learn PCA({components})": sk}, out, compile_s


def main():
    from harness import compare, write_result

    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--components", type=int, default=50)
    a = ap.parse_args()

    print("k-means on digits (k = 10, 10 inits)")
    fns, inertia, km_compile, n_iter = kmeans_fns()
    km = compare(fns, repeats=a.repeats)
    ine = {k: statistics.median(v) for k, v in inertia.items()}
    excess = [o / s - 1 for o, s in zip(inertia["ours"], inertia["scikit-learn"])]
    print(f"  inertia median: ours {ine['ours']:.2f}, scikit-learn {ine['scikit-learn']:.2f} "
          f"(ours − sklearn per round: {', '.join(f'{100 * e:+.3f}%' for e in excess)}); compile {km_compile:.2f} s")

    print(f"PCA of a random 10000 × 784 matrix, {a.components} components")
    fns, out, pca_compile = pca_fns(a.components)
    pc = compare(fns, repeats=a.repeats)
    ev_ours = np.asarray(out["ours"].explained_variance, np.float64)
    ev_sk = np.asarray(out["scikit-learn"].explained_variance_, np.float64)
    ev_err = float(np.max(np.abs(ev_ours - ev_sk) / ev_sk))
    print(f"  explained variance: max relative difference {ev_err:.2e}; compile {pca_compile:.2f} s")

    write_result("unsupervised", {
        "kmeans": {"data": "digits 1797 × 64 (x/16)", "k": 10, "n_init": 10, "comparison": km,
                   "inertia": inertia, "inertia_median": ine, "inertia_excess_per_round": excess,
                   "ours_compile_s": km_compile, "ours_lloyd_iterations_best_init": n_iter},
        "pca": {"data": "random normal 10000 × 784 float32", "components": a.components, "comparison": pc,
                "explained_variance_max_rel_diff": ev_err, "ours_compile_s": pca_compile},
    })


if __name__ == "__main__":
    main()

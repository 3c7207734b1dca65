"""The spectral view of graphs: adjacency, Laplacian, graph Fourier basis, polynomial filters.

    A_ij = weight of the edge j → i (row = receiver, so (A x)_i = Σ_{j→i} x_j, as message passing)
    L = I − D^{-1/2} A D^{-1/2}      (normalized Laplacian of a symmetric A; isolated nodes: D^{-1/2} = 0)
    L = U Λ Uᵀ                        the columns of U are the graph Fourier basis, x̂ = Uᵀ x
    P(A) x = Σ_k c_k A^k x            a graph convolution: it commutes with A (P(A) A = A P(A)),
                                     so it is equivariant to any node permutation that fixes A

On the directed cycle, A is the shift (A x)_i = x_{i−1}; a polynomial in it is the circular
convolution y_i = Σ_k c_k x_{i−k}, and the shift's eigenvectors are the discrete Fourier modes
e^{2πi·jk/n}: the line → circle → graph bridge of the notes.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dlnotes.errors import ConfigError


def adjacency_matrix(senders, receivers, num_nodes: int, weights=None, dtype=jnp.float32) -> jax.Array:
    """Dense (N, N) A with A[receiver, sender] += weight (1 by default)."""
    w = jnp.ones(jnp.shape(senders), dtype) if weights is None else jnp.asarray(weights, dtype)
    return jnp.zeros((num_nodes, num_nodes), dtype).at[jnp.asarray(receivers), jnp.asarray(senders)].add(w)


def degrees(adj: jax.Array) -> jax.Array:
    """(N,) row sums (in-degree with A[receiver, sender])."""
    return jnp.sum(adj, axis=1)


def laplacian(adj: jax.Array, normalized: bool = True) -> jax.Array:
    """L = D − A, or (``normalized``) I − D^{-1/2} A D^{-1/2} with an isolated node's row and
    column all zero (as networkx's ``normalized_laplacian_matrix``)."""
    d = degrees(adj)
    if not normalized:
        return jnp.diag(d) - adj
    inv = jnp.where(d > 0, 1.0 / jnp.sqrt(jnp.where(d > 0, d, 1.0)), 0.0)
    n = adj.shape[0]
    return jnp.eye(n, dtype=adj.dtype) * (d > 0) - inv[:, None] * adj * inv[None, :]


def fourier_basis(sym: jax.Array):
    """Eigen-decomposition of a symmetric operator (Laplacian or adjacency): (λ ascending (N,), U (N, N))."""
    return jnp.linalg.eigh(sym)


def gft(x: jax.Array, basis: jax.Array) -> jax.Array:
    """Graph Fourier transform x̂ = Uᵀ x (x: (N,) or (N, F))."""
    return basis.T @ x


def igft(x_hat: jax.Array, basis: jax.Array) -> jax.Array:
    """Inverse transform x = U x̂."""
    return basis @ x_hat


def polynomial_filter(adj: jax.Array, coeffs, x: jax.Array) -> jax.Array:
    """P(A) x = Σ_k coeffs[k] A^k x by k matrix–vector products (Horner's rule)."""
    coeffs = jnp.asarray(coeffs)
    y = coeffs[-1] * x
    for k in range(coeffs.shape[0] - 2, -1, -1):
        y = adj @ y + coeffs[k] * x
    return y


def polynomial_matrix(adj: jax.Array, coeffs) -> jax.Array:
    """The matrix P(A) = Σ_k coeffs[k] A^k."""
    return polynomial_filter(adj, coeffs, jnp.eye(adj.shape[0], dtype=adj.dtype))


def spectral_response(eigenvalues: jax.Array, coeffs) -> jax.Array:
    """P(λ) per eigenvalue: in the eigenbasis of A, P(A) is diagonal with these entries."""
    coeffs = jnp.asarray(coeffs)
    return sum(coeffs[k] * eigenvalues ** k for k in range(coeffs.shape[0]))


# ------------------------------------------------------------------------------- the cycle
def cycle_edges(n: int, directed: bool = True):
    """(senders, receivers) of the cycle 0 → 1 → … → n−1 → 0 (and back if not ``directed``)."""
    s = np.arange(n)
    r = (s + 1) % n
    if directed:
        return s.astype(np.int32), r.astype(np.int32)
    return np.concatenate([s, r]).astype(np.int32), np.concatenate([r, s]).astype(np.int32)


def shift_operator(n: int, dtype=jnp.float32) -> jax.Array:
    """The cyclic shift S with (S x)_i = x_{i−1 mod n}: the adjacency of the directed cycle."""
    s, r = cycle_edges(n)
    return adjacency_matrix(s, r, n, dtype=dtype)


def dft_matrix(n: int) -> np.ndarray:
    """Unitary DFT basis F[i, k] = e^{2πi·ik/n}/√n (columns = Fourier modes). S F = F diag(e^{−2πik/n})."""
    i = np.arange(n)
    return np.exp(2j * np.pi * np.outer(i, i) / n) / np.sqrt(n)


def circular_conv_kernel(coeffs) -> np.ndarray:
    """The (K, 1, 1) kernel w for ``dlnotes.nn.conv1d`` (a cross-correlation) such that conv1d of the
    wrap-padded signal is Σ_k c_k x_{i−k}: w[a] = c_{K−1−a}; pad K−1 values on the left."""
    c = np.asarray(coeffs, np.float32)
    return c[::-1].reshape(-1, 1, 1).copy()


# ------------------------------------------------------------------------------- clustering
def spectral_embedding(adj, k: int) -> np.ndarray:
    """Rows of the k eigenvectors of the normalized Laplacian with the smallest eigenvalues,
    each row scaled to unit length (Ng, Jordan & Weiss)."""
    adj = np.asarray(adj, np.float64)
    adj = 0.5 * (adj + adj.T)
    _, u = np.linalg.eigh(_laplacian_np(adj))   # float64 NumPy: a precomputation, not a layer
    emb = u[:, :k]
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


def _laplacian_np(adj):
    d = adj.sum(1)
    inv = np.where(d > 0, 1.0 / np.sqrt(np.where(d > 0, d, 1.0)), 0.0)
    return np.diag((d > 0).astype(float)) - inv[:, None] * adj * inv[None, :]


def spectral_clustering(adj, k: int, *, seed: int = 0, n_init: int = 10) -> np.ndarray:
    """Cluster the nodes of a symmetric graph into ``k`` groups: k-means (scikit-learn, k-means++,
    ``n_init`` restarts) on ``spectral_embedding``. Returns (N,) int labels in [0, k)."""
    if not 1 <= k <= np.shape(adj)[0]:
        raise ConfigError("num_clusters", f"must be in [1, {np.shape(adj)[0]}], got {k}")
    from sklearn.cluster import KMeans
    emb = spectral_embedding(adj, k)
    return KMeans(k, n_init=n_init, random_state=seed).fit_predict(emb).astype(np.int32)

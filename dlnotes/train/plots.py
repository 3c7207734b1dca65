"""Figures (matplotlib, Agg, PNG). Each function writes ``path`` and returns it."""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save(fig, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def learning_curves(curves: Mapping[str, np.ndarray], path: str, *, title: str = "",
                    xlabel: str = "step", ylabel: str = "loss", logy: bool = True,
                    steps: np.ndarray | None = None) -> str:
    """One line per named curve; non-finite values (diverged) are left out."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, y in curves.items():
        y = np.asarray(y, float)
        x = np.arange(len(y)) if steps is None else steps
        ax.plot(x, np.where(np.isfinite(y), y, np.nan), label=str(name), lw=1.2)
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if len(curves) <= 12:
        ax.legend(fontsize=7)
    return save(fig, path)


def sweep_figure(rows: Sequence[Mapping], path: str, *, x: str, value: str = "final_loss",
                 y: str | None = None, curves: np.ndarray | None = None, title: str = "") -> str:
    """Final ``value`` over the grid, diverged points marked ×.

    1 swept key (``x``): value vs x, one line per other key's value (mean over seeds
    if ``seed`` swept); 2 keys (``x``, ``y``): a heat map with diverged cells hatched.
    ``curves`` (G, T) adds a panel of learning curves.
    """
    ncols = 2 if curves is not None else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 4.2), squeeze=False)
    ax = axes[0, 0]
    xs = sorted({r[x] for r in rows})
    if y is None:
        seeds = sorted({r.get("seed", 0) for r in rows})
        for s in seeds:
            pts = [r for r in rows if r.get("seed", 0) == s]
            pts.sort(key=lambda r: r[x])
            vals = np.array([np.nan if r["diverged"] or r.get(value) is None else r[value] for r in pts], float)
            ax.plot([r[x] for r in pts], vals, "o-", ms=3, lw=1, label=f"seed {s}")
            dx = [r[x] for r in pts if r["diverged"]]
            if dx:
                lo = np.nanmin(vals) if np.isfinite(vals).any() else 1.0
                ax.plot(dx, [lo] * len(dx), "rx", ms=8, label="diverged" if s == seeds[0] else None)
        ax.set_xscale("log" if min(xs) > 0 and max(xs) / min(xs) > 20 else "linear")
        ax.set_yscale("log")
        ax.set(xlabel=x, ylabel=value)
        if len(seeds) <= 8:
            ax.legend(fontsize=7)
    else:
        ys = sorted({r[y] for r in rows})
        grid = np.full((len(ys), len(xs)), np.nan)
        div = np.zeros_like(grid, bool)
        for r in rows:
            i, j = ys.index(r[y]), xs.index(r[x])
            v = r.get(value)
            if r["diverged"]:
                div[i, j] = True
            elif v is not None:
                grid[i, j] = np.nanmean([grid[i, j], v]) if np.isfinite(grid[i, j]) else v
        im = ax.imshow(np.log10(grid), origin="lower", aspect="auto", cmap="viridis")
        fig.colorbar(im, ax=ax, label=f"log10 {value}")
        for i, j in zip(*np.nonzero(div)):
            ax.text(j, i, "×", ha="center", va="center", color="red", fontsize=12)
        ax.set_xticks(range(len(xs)), [f"{v:.3g}" for v in xs], rotation=45, fontsize=7)
        ax.set_yticks(range(len(ys)), [f"{v:.3g}" for v in ys], fontsize=7)
        ax.set(xlabel=x, ylabel=y)
    ax.set_title(title or f"{value} over the sweep (× = diverged)")
    if curves is not None:
        ax2 = axes[0, 1]
        c = np.asarray(curves, float)
        for g in range(c.shape[0]):
            ax2.plot(np.where(np.isfinite(c[g]), c[g], np.nan), lw=0.8)
        ax2.set(yscale="log", xlabel="step", ylabel="train loss", title="learning curves")
    return save(fig, path)

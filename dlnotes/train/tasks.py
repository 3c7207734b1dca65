"""Ready-made tasks for problems whose model is a formula (least squares)."""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from dlnotes import hparams as hpmod
from dlnotes.train.loop import Task


def least_squares_loss(w, x, y):
    """L(w) = ½·mean((Xw − y)²); ∇L = H(w − ŵ) with H = XᵀX/n."""
    return 0.5 * jnp.mean(jnp.square(x @ w - y))


def least_squares_task(config, data, *, optimizer: Callable, evaluate: Callable | None = None,
                       num_steps: int | None = None, batch_size: int | None = None,
                       sampling: str | None = None, log_every: int | None = None) -> Task:
    """Linear regression w ∈ R^d on ``data["train"] = {"x": (n, d), "y": (n,)}``.

    Init: w0 = model.init_scale · N(0, I) (0 gives the zero init). ``init_scale`` is traced.
    """
    d = data["train"]["x"].shape[1]

    def init(key, hp):
        scale = hpmod.get(hp, config, "model.init_scale")
        return scale * jax.random.normal(key, (d,), data["train"]["x"].dtype), {}

    def loss(w, ms, batch, key, hp):
        return least_squares_loss(w, batch["x"], batch["y"]), ({}, ms)

    return Task(init=init, loss=loss, optimizer=optimizer, data=data,
                num_steps=num_steps or config.num_steps,
                batch_size=batch_size if batch_size is not None else (config.get("batch_size", 0) or None),
                sampling=sampling or config.get("sampling", "epoch"),
                log_every=log_every or config.get("log_every", 1), evaluate=evaluate)


def classification_task(config, model, data, *, augment=None, call_kwargs: Callable | None = None,
                        eval_splits=("val", "test"), num_classes: int | None = None,
                        eval_batch: int = 0, cpu_compiler_options=None) -> Task:
    """Softmax classification of ``data[split] = {"x": (N, ...), "y": (N,) int}``.

    ``model``: a :class:`dlnotes.models.base.Functional` (``init``/``apply``).
    Loss: cross-entropy with label smoothing ε = ``train.label_smoothing`` (traced;
    0 if the config has no such key). ``augment``: a
    ``dlnotes.data.augment.Pipeline`` (or any ``(key, x, onehot) -> (x, soft labels)``)
    applied on the fly to each training batch inside the compiled step.
    ``call_kwargs(hp) -> dict``: extra traced arguments for the model's ``__call__``
    (e.g. ``{"dropout": hparams.get(hp, config, "model.dropout")}``).
    Evaluation (every ``log_every`` steps, eval mode): ``<split>_acc`` and
    ``<split>_loss`` for each split in ``eval_splits`` present in ``data``, plus
    ``train_acc`` on the training set; ``eval_batch`` > 0 evaluates in slices of
    that size (``lax.map``, the last one zero-padded) to bound memory. All splits go through
    one forward pass (concatenated), so the network's forward pass is compiled once for evaluation.
    ``cpu_compiler_options``: see :class:`~dlnotes.train.loop.Task`.
    """
    from dlnotes.losses import cross_entropy

    k = num_classes or int(np.max(np.asarray(data["train"]["y"]))) + 1
    ls_path = "train.label_smoothing"
    has_ls = "train" in config and "label_smoothing" in config.train
    kw = call_kwargs or (lambda hp: {})

    def smoothing(hp):
        return hpmod.get(hp, config, ls_path) if has_ls else 0.0

    def loss(params, ms, batch, key, hp):
        k_aug, k_model = jax.random.split(key)
        x, y = batch["x"], batch["y"]
        if augment is not None:
            x, q = augment(k_aug, x, jax.nn.one_hot(y, k))
            eps = smoothing(hp)
            q = q * (1.0 - eps) + eps / k
        else:
            q = None
        logits, new_ms = model.apply(params, ms, x, train=True, key=k_model, **kw(hp))
        ce = cross_entropy(logits, q) if q is not None else cross_entropy(logits, y, label_smoothing=smoothing(hp))
        acc = jnp.mean(jnp.argmax(logits, -1) == y)
        return ce, ({"batch_acc": acc}, new_ms)

    def predict(params, ms, x, hp):
        if eval_batch and x.shape[0] > eval_batch:
            n = x.shape[0]
            x = jnp.concatenate([x, jnp.zeros((-n % eval_batch,) + x.shape[1:], x.dtype)])
            xs = x.reshape((-1, eval_batch) + x.shape[1:])
            out = jax.lax.map(lambda xb: model.apply(params, ms, xb, train=False, **kw(hp))[0], xs)
            return out.reshape((x.shape[0],) + out.shape[2:])[:n]
        return model.apply(params, ms, x, train=False, **kw(hp))[0]

    def evaluate(params, ms, d, hp):
        # every split in one forward pass (eval mode: examples are independent), so the compiled
        # program holds one copy of the network's forward pass, not one per split size
        splits = ("train",) + tuple(s for s in eval_splits if s in d)
        sizes = [d[s]["x"].shape[0] for s in splits]
        logits = predict(params, ms, jnp.concatenate([d[s]["x"] for s in splits]), hp)
        out, start = {}, 0
        for split, n in zip(splits, sizes):
            lg, start = logits[start:start + n], start + n
            out[f"{split}_acc"] = jnp.mean(jnp.argmax(lg, -1) == d[split]["y"])
            out[f"{split}_loss"] = cross_entropy(lg, d[split]["y"])
        return out

    bs = config.get("batch_size", 0) or None
    return Task(init=model.init, loss=loss, optimizer=lambda hp: _make_optimizer(config, hp), data=data,
                num_steps=config.num_steps, batch_size=bs, sampling=config.get("sampling", "epoch"),
                log_every=config.get("log_every", 1), evaluate=evaluate, cpu_compiler_options=cpu_compiler_options)


def _make_optimizer(config, hp):
    from dlnotes.optim.factory import make_optimizer
    return make_optimizer(config, hp)

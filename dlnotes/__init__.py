"""dlnotes: a deep learning course's notes as a JAX functional research codebase.

Pure functions: ``dlnotes.nn`` (layers), ``dlnotes.linear`` (least squares, ridge),
``dlnotes.losses``, ``dlnotes.optim`` (optimizers as optax transformations).
Engine: ``dlnotes.train`` (a whole run as one ``lax.scan``; sweeps by ``vmap``).
Claims: ``dlnotes.experiments`` (one module per experiment of CLAIMS.md).
"""
__version__ = "0.1.0"

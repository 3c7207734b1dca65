"""Shared test set-up: float64 available on demand, CPU, quiet logs."""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# the scripts' persistent compilation cache, in-process too: programs two tests share compile once
# (and a second `make test` reuses the first's); DLNOTES_COMPILATION_CACHE=off turns it off
from dlnotes.compile_cache import enable as _enable_compilation_cache  # noqa: E402

_enable_compilation_cache()

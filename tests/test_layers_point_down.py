"""The floor plan: no module imports a higher layer (DESIGN.md).

ground (errors, hparams, compile_cache, linear, losses, unsupervised, nn/, data/, optim/) → models/ → train/ →
experiments/ → jobs, report → cli/scripts. Experiments share tasks through ``experiments.base`` and
``experiments.common*``, never through each other.
"""
import ast
import os

import pytest

PKG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "dlnotes")

LEVEL = {"errors": 0, "hparams": 0, "linear": 0, "losses": 0, "unsupervised": 0, "nn": 0, "data": 0,
         "optim": 0, "configs": 0, "compile_cache": 0, "models": 1, "train": 2, "experiments": 3, "jobs": 4, "report": 4, "cli": 5}


def _layer(modname):
    parts = modname.split(".")
    if parts[0] != "dlnotes" or len(parts) < 2:
        return None
    return parts[1]


def _imports(path):
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            for a in node.names:
                yield f"{node.module}.{a.name}"


def _modules():
    for root, _, files in os.walk(PKG):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(root, f)
                rel = os.path.relpath(path, os.path.dirname(PKG))[:-3].replace(os.sep, ".")
                yield rel.removesuffix(".__init__"), path


@pytest.mark.parametrize("mod,path", sorted(_modules()))
def test_imports_point_down(mod, path):
    here = _layer(mod)
    if here is None or here == "__init__" or here not in LEVEL:
        assert here in (None, "__init__") or here in LEVEL, f"{mod}: layer {here!r} not in the floor plan"
        return
    for imp in _imports(path):
        there = _layer(imp)
        if there is None or there not in LEVEL:
            continue
        assert LEVEL[there] <= LEVEL[here], f"{mod} (layer {here}) imports {imp} (layer {there})"
        if here == "experiments" and there == "experiments":
            target = imp.split(".")[2] if len(imp.split(".")) > 2 else ""
            own = mod.split(".")[2] if len(mod.split(".")) > 2 else ""
            assert target in ("base", "common", own) or target.startswith("common_") or \
                   own in ("base",) or target == "", f"{mod} imports another experiment: {imp}"

"""End to end: scripts/train.py on configs/char_lm.py (tiny profile), then scripts/sample.py."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_train_char_lm_then_sample(tmp_path):
    wd = str(tmp_path / "lm")
    r = _run("scripts/train.py", "--config=configs/char_lm.py:tiny", f"--workdir={wd}", "--progress=false")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(x) for x in open(os.path.join(wd, "metrics.jsonl"))]
    assert "val_bpc" in rows[-1] and rows[-1]["val_bpc"] < rows[0]["val_bpc"]
    assert os.path.getsize(os.path.join(wd, "bpc.png")) > 1000   # validation bits per character, plotted
    r = _run("scripts/sample.py", f"--workdir={wd}", "--prompt=Return the", "--num_chars=50", "--top_k=5")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("Return the") and len(r.stdout.rstrip("\n")) >= 60
    r = _run("scripts/sample.py", f"--workdir={wd}", "--prompt=\u2603")           # not in the vocabulary
    assert r.returncode == 2 and r.stderr.strip().startswith("error: prompt:") and len(r.stderr.strip().splitlines()) == 1
    r = _run("scripts/sample.py", f"--workdir={tmp_path / 'nothing'}")
    assert r.returncode == 2 and r.stderr.strip().startswith("error: --workdir:")
    missing = str(tmp_path / "missing.txt")
    r = _run("scripts/train.py", "--config=configs/char_lm.py:tiny", f"--workdir={tmp_path / 'x'}",
             f"--config.data.path={missing}")
    assert r.returncode == 2 and r.stderr.strip() == f"error: data.path: no such file: {missing}"

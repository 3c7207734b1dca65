"""The absl scripts end to end, in subprocesses, as a user runs them."""
import json
import os
import subprocess
import sys


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, JAX_PLATFORMS="cpu")


def run(*args, check=True):
    p = subprocess.run([sys.executable, *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} exited {p.returncode}:\n{p.stderr[-3000:]}")
    return p


def test_train_writes_outputs_and_refuses_to_overwrite(tmp_path):
    wd = tmp_path / "run"
    run("scripts/train.py", "--config=configs/lr_stability.py:fast", f"--workdir={wd}",
        "--config.optimizer.learning_rate=1.5", "--chunk_steps=50", "--noprogress")
    for f in ("config.json", "metrics.jsonl", "learning_curve.png", "summary.json", "DONE"):
        assert (wd / f).exists(), f
    rows = [json.loads(line) for line in (wd / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 0 and rows[-1]["step"] == 200
    assert rows[-1]["full_loss"] < rows[0]["full_loss"]
    before = (wd / "metrics.jsonl").read_text()
    p = run("scripts/train.py", "--config=configs/lr_stability.py:fast", f"--workdir={wd}", check=False)
    assert p.returncode == 2 and "--overwrite" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert (wd / "metrics.jsonl").read_text() == before


def test_sweep_writes_one_row_per_point(tmp_path):
    wd = tmp_path / "sweep"
    run("scripts/sweep.py", "--config=configs/lr_stability.py:fast", f"--workdir={wd}",
        "--sweep=optimizer.learning_rate=0.5,1.0,3.0;seed=0:2", "--noprogress")
    rows = [json.loads(line) for line in (wd / "sweep.jsonl").read_text().splitlines()]
    assert len(rows) == 6
    # λ_max = 1: at η = 3 the loss grows as 2^(2t) and overflows; the others converge
    assert [r["diverged"] for r in rows] == [False, False, False, False, True, True]
    assert all(r["diverged_at_step"] is not None for r in rows if r["diverged"])
    assert (wd / "sweep.png").exists()


def test_reproduce_writes_report(tmp_path):
    wd = tmp_path / "rep"
    run("scripts/reproduce.py", f"--workdir={wd}", "--only=C1")
    report = (wd / "report.md").read_text()
    assert "| C1 |" in report and "pass" in report and "lr_sweep.png" in report

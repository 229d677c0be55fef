"""Ctrl-C ends a command within 10 s with one line and exit code 130, compiling included, keeping what was written."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import numpy as np
import pytest
from conftest import SIQML

from siqml_cli.data.io import read_hdf5


def as_in_a_terminal():
    """A test worker may have SIGINT ignored or blocked, and a child inherits both; a shell gives the default."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_when(args: list[str], seen: str, env: dict | None = None, timeout: float = 600,
                   log=None, signum: int = signal.SIGINT) -> tuple[int, float, str]:
    """Start `siqml *args`, send `signum` 2 s after `seen` appears on its stderr (or in the file `log`);
    (exit code, seconds to exit, stderr)."""
    proc = subprocess.Popen([str(SIQML), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=as_in_a_terminal, env={**os.environ, **(env or {})})
    os.set_blocking(proc.stderr.fileno(), False)
    err = ""
    try:
        deadline = time.monotonic() + timeout
        def watched() -> str:
            return (log.read_text() if log.exists() else "") if log else err

        while seen not in watched() and proc.poll() is None and time.monotonic() < deadline:
            err += (proc.stderr.read() or b"").decode(errors="replace")
            time.sleep(0.1)
        assert seen in watched(), err
        time.sleep(2)
        sent = time.monotonic()
        proc.send_signal(signum)
        proc.wait(timeout=60)
        elapsed = time.monotonic() - sent
        os.set_blocking(proc.stderr.fileno(), True)
        err += (proc.stderr.read() or b"").decode(errors="replace")
    finally:
        proc.kill()
    return proc.returncode, elapsed, err


@pytest.mark.parametrize("signum", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)],
                         ids=["ctrl_c", "sigterm"])
def test_ctrl_c_while_compiling_ends_within_10_s(tmp_path, signum):
    """LiH with 300 blocks passes the compile-size guard and compiles for a minute (no compilation cache);
    Ctrl-C (or SIGTERM, which training handles the same way) 2 s after JAX logs that it compiles the training
    step. The run has no checkpoint yet, so its unfinished folder goes."""
    run = tmp_path / "run"
    code, elapsed, err = interrupt_when(
        ["train", "+molecule=lih", "model.blocks=300", "loss=energy_force", "train.steps=5", f"hydra.run.dir={run}"],
        "Compiling jit(step)", env={"SIQML_JAX_CACHE": str(tmp_path / "cache"), "JAX_LOG_COMPILES": "1"},
        log=run / "train.log", signum=signum)
    assert code == 128 + signum, err
    assert elapsed < 10
    how = "interrupted" if signum == signal.SIGINT else "terminated (SIGTERM)"
    assert "Traceback" not in err and f"siqml train: {how}" in err
    assert not (run / "run.json").exists() and not (run / "config.yaml").exists()


def test_ctrl_c_while_labelling_keeps_the_labels(tmp_path):
    out = tmp_path / "lih.h5"
    code, elapsed, err = interrupt_when(["data", "+molecule=lih", "n=50", f"out={out}"], "labelling lih:   2%")
    assert code == 130, err
    assert elapsed < 10 and "Traceback" not in err
    partial = tmp_path / "lih.h5.partial.h5"
    kept = read_hdf5(partial)
    done = np.isfinite(kept.energies)
    assert 1 <= done.sum() < 50 and np.isfinite(kept.forces[done]).all()
    last = err.rstrip().splitlines()[-1]
    assert last == (f"siqml data: interrupted; {done.sum()} of 50 configurations labelled, kept in {partial}; "
                    "run the same command again to continue")
    assert not out.exists()


def test_a_process_that_does_not_stop_is_ended_with_the_notes_of_what_was_kept(tmp_path):
    """SIGTERM to a main thread that will not stop: the watchdog runs the `on_interrupt` callbacks, prints one
    line with their notes and ends the process with 143, within 10 s."""
    import sys

    script = """
import time
from siqml_cli import interrupts
interrupts.install("train")
interrupts.on_interrupt(lambda: "continue with: siqml train resume=somewhere")
interrupts.on_interrupt(lambda: None)
ready = False
while True:
    try:  # "ready" inside the try: the signal may come as soon as it is printed
        if not ready:
            print("ready", flush=True)
            ready = True
        time.sleep(0.05)
    except KeyboardInterrupt:
        pass  # a main thread stuck where it cannot stop
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=as_in_a_terminal)
    try:
        assert proc.stdout.readline().strip() == "ready"
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        elapsed = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert elapsed < 10
    last = err.strip().splitlines()[-1]
    assert last == "siqml train: terminated (SIGTERM); continue with: siqml train resume=somewhere"


def test_a_forced_exit_marks_the_training_run_interrupted_or_removes_it(tmp_path):
    """What `tasks` registers with `on_interrupt` while it trains: `RunFolder.stop_forced`."""
    import hashlib
    import json

    from siqml_cli.runs import INTERRUPTED, RunFolder, Split

    split = Split(np.arange(4), np.arange(4, 6))
    fresh = RunFolder(tmp_path / "fresh")
    with fresh.training("seed: 0\n", split, "data.h5", {"molecule": "lih"}):
        assert fresh.stop_forced() is None  # no checkpoint yet: nothing to continue from
        assert not fresh.path.exists()

    checkpointed = RunFolder(tmp_path / "checkpointed")
    with checkpointed.training("seed: 0\n", split, "data.h5", {"molecule": "lih"}):
        checkpointed.write_checkpoint(5, [np.zeros(3)], np.zeros((5, 4)), 1.0)
        note = checkpointed.stop_forced()
    assert note == f"continue with: siqml train resume={checkpointed.path}"
    assert json.loads(checkpointed.file("run.json").read_text())["status"] == INTERRUPTED

    untouched = RunFolder(checkpointed.path)  # another invocation, which did not train it (e.g. a refused resume)
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in untouched.path.iterdir()}
    assert untouched.stop_forced() is None
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in untouched.path.iterdir()} == before

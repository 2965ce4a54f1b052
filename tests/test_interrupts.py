"""Ctrl-C during fit: real SIGINTs at random moments, in child processes, on both backends.

After the interrupt, the weights, every optimizer slot and ``iterations`` must belong to one
completed step: replaying exactly that many steps without interruption gives the same arrays,
bit for bit. History holds the completed epochs. Saving, loading and training on continues
exactly as an uninterrupted run.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A child started from a shell without job control (a background job of a script, a CI runner)
# inherits SIGINT ignored, and Python then leaves it ignored; a terminal's Ctrl-C reaches a
# program whose SIGINT is Python's own handler, so the child installs it first.
CHILD = textwrap.dedent("""
    import json, os, signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import numpy as np
    import npnet
    from npnet import layers

    backend, out_dir = sys.argv[1], sys.argv[2]
    N, BATCH = 640, 32
    STEPS = N // BATCH
    rng = np.random.default_rng(0)
    x = rng.random((N, 12, 12), dtype=np.float32)
    y = rng.integers(0, 10, N)

    def fresh():
        npnet.utils.set_random_seed(7)
        model = npnet.Sequential([layers.Flatten(input_shape=(12, 12)), layers.Dense(64, activation="relu"),
                                  layers.Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                      backend=backend)
        return model

    class StopAfter(npnet.callbacks.Callback):
        def __init__(self, steps):
            super().__init__()
            self.steps = steps

        def on_train_batch_end(self, batch, logs=None):
            if self.model.optimizer.iterations >= self.steps:
                self.model.stop_training = True

    def train_steps(model, steps):
        if steps:
            model.fit(x, y, batch_size=BATCH, epochs=10**6, shuffle=False, verbose=0,
                      callbacks=[StopAfter(model.optimizer.iterations + steps)])
        return model

    def arrays(model):
        state = model.optimizer.state or {}
        return [w for w in model.get_weights()] + [a for slot in sorted(state) for a in state[slot]]

    fresh().fit(x[:BATCH], y[:BATCH], batch_size=BATCH, epochs=1, verbose=0)  # compile the kernels first
    model = fresh()
    print("ready", flush=True)
    try:
        model.fit(x, y, batch_size=BATCH, epochs=100000, shuffle=False, verbose=0)
        raise SystemExit("fit finished without being interrupted")
    except KeyboardInterrupt:
        pass
    done = model.optimizer.iterations
    replay = train_steps(fresh(), done)
    same_state = all(np.array_equal(a, b) for a, b in zip(arrays(model), arrays(replay)))
    history_epochs = list(model.history.epoch)
    path = os.path.join(out_dir, "interrupted.npnet")
    model.save(path)
    resumed = train_steps(npnet.models.load_model(path), 7)
    straight = train_steps(train_steps(fresh(), done), 7)
    same_resume = all(np.array_equal(a, b) for a, b in zip(arrays(resumed), arrays(straight)))
    print(json.dumps({"iterations": done, "steps_per_epoch": STEPS, "same_state": same_state,
                      "history_epochs": history_epochs, "same_resume": same_resume,
                      "resumed_iterations": resumed.optimizer.iterations}), flush=True)
""")


def interrupt_once(backend, delay, tmp_path, script=CHILD):
    """Run ``script`` in a child, SIGINT it ``delay`` s after it prints "ready"; its last line's JSON."""
    child = subprocess.Popen([sys.executable, "-c", script, backend, str(tmp_path)], cwd=REPO_ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        time.sleep(delay)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=300)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_ctrl_c_during_fit_leaves_one_consistent_step_and_training_resumes_exactly(backend, tmp_path):
    delays = np.random.default_rng().uniform(0.02, 0.6, size=4)
    for trial, delay in enumerate(delays):
        result = interrupt_once(backend, float(delay), tmp_path)
        done, per_epoch = result["iterations"], result["steps_per_epoch"]
        where = f"{backend}, trial {trial}, SIGINT after {delay:.3f} s, {done} steps done"
        assert result["same_state"], f"weights, slots and iterations disagree ({where})"
        completed = list(range(done // per_epoch))
        # an epoch whose last step ran but whose end the interrupt came before is not yet in History
        assert result["history_epochs"] in (completed, completed[:-1]), where
        assert result["same_resume"] and result["resumed_iterations"] == done + 7, where


def _fit_small(backend, callbacks=()):
    import npnet
    from npnet import layers
    rng = np.random.default_rng(1)
    x, y = rng.random((64, 5), dtype=np.float32), rng.integers(0, 3, 64)
    model = npnet.Sequential([layers.Input(shape=(5,)), layers.Dense(4, activation="relu"),
                              layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", backend=backend)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=list(callbacks))
    return model


@pytest.mark.parametrize("handler", ["ignored", "the user's own", "Python's default"])
def test_fit_replaces_only_pythons_default_sigint_handler_and_puts_it_back(handler, monkeypatch):
    """A process that ignores SIGINT, or handles it itself, keeps doing so during fit: npnet
    defers Ctrl-C only where Python's own handler would have raised KeyboardInterrupt."""
    def own(signum, frame):
        raise AssertionError("not called in this test")

    installed = {"ignored": signal.SIG_IGN, "the user's own": own,
                 "Python's default": signal.default_int_handler}[handler]
    calls, real_signal = [], signal.signal

    def recording_signal(signum, action):
        if signum == signal.SIGINT:
            calls.append(action)
        return real_signal(signum, action)

    previous = real_signal(signal.SIGINT, installed)
    try:
        from npnet import utils  # installs handlers through signal's C functions
        monkeypatch.setattr(utils, "_set_handler", recording_signal)
        _fit_small("numpy")
        monkeypatch.undo()
        after = signal.getsignal(signal.SIGINT)
    finally:
        real_signal(signal.SIGINT, previous)
    assert after is installed
    if handler == "Python's default":  # installed for the steps and put back after them
        assert calls and calls[-1] is signal.default_int_handler and len(calls) % 2 == 0, calls
    else:
        assert calls == []

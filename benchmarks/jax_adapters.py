"""JAX + optax adapters for the harness, in the two styles a JAX user writes a training loop.

* ``"loop"``: one ``jax.jit``-compiled train step (forward, ``value_and_grad``, optax Adam
  update), called once per batch from a Python loop;
* ``"scan"``: the whole epoch as one jitted call, a ``jax.lax.scan`` of the same step over the
  epoch's full batches; a last, partial batch (when the batch size does not divide n) goes
  through the jitted step on its own, as ``lax.scan`` needs batches of one shape.

Both keep the training images on the device (``jax.device_put`` once per ``fit``) and gather
each batch by index inside the compiled code; the shuffle order comes from NumPy on the host.
The running loss and accuracy that Keras's ``fit`` reports are summed inside the compiled
step, so no step waits for the host.

:class:`CompileClock` listens to JAX's own monitoring events to add up the time spent tracing,
lowering and compiling: the "pure compile time" of a run. Keras 3 on the JAX backend compiles
through ``jax.jit`` as well, so its adapter uses the same clock. Nothing here imports JAX at
module level.
"""

import contextlib

import numpy as np

#: JAX's monitoring events (jax/_src/dispatch.py) whose durations make up one compilation:
#: tracing the Python function to a jaxpr, lowering it to MLIR, and XLA's compilation.
COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
                  "/jax/core/compile/jaxpr_to_mlir_module_duration",
                  "/jax/core/compile/backend_compile_duration")


class CompileClock:
    """Seconds JAX spent tracing, lowering and compiling inside :meth:`timing` blocks.

    ``seconds`` counts only what happens inside ``with clock.timing():`` (the adapters wrap
    ``fit`` in it), so predict's compilations stay out of the fit's compile time; the adapters
    set it back to 0 when they build a new model.
    """

    def __init__(self):
        import jax.monitoring

        self.seconds = 0.0
        self._active = False
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, event, duration, **kwargs):
        if self._active and event in COMPILE_EVENTS:
            self.seconds += duration

    @contextlib.contextmanager
    def timing(self):
        self._active = True
        try:
            yield self
        finally:
            self._active = False

    def report(self):
        return {"compile_s": self.seconds,
                "how": "JAX's monitoring events during fit: tracing, lowering to MLIR and XLA "
                       "compilation (" + ", ".join(COMPILE_EVENTS) + ")"}


def glorot_uniform(rng, fan_in, fan_out):
    """Keras's glorot_uniform kernel (fan_in, fan_out), float32: U(±sqrt(6 / (in + out)))."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32)


def make_step(optimizer):
    """The pure train step: ``(params, opt_state, totals, x_all, y_all, index) -> same three``.

    ``totals`` is ``[sum of per-sample losses, number correct]`` of the epoch so far.
    """
    import jax
    import jax.numpy as jnp
    import optax

    def loss_fn(params, x, y):
        logits = forward(params, x)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        return losses.mean(), logits

    def step(params, opt_state, totals, x_all, y_all, index):
        x, y = x_all[index], y_all[index]
        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        correct = (logits.argmax(axis=1) == y).sum()
        totals = totals + jnp.stack([loss * y.shape[0], correct.astype(jnp.float32)])
        return params, opt_state, totals

    return step


def forward(params, x):
    """Flatten -> Dense(relu) -> Dense: the logits (n, 10) of x (n, 28, 28)."""
    import jax.numpy as jnp

    hidden = jnp.maximum(x.reshape(x.shape[0], -1) @ params["kernel_0"] + params["bias_0"], 0.0)
    return hidden @ params["kernel_1"] + params["bias_1"]


def make_epoch(step):
    """One epoch as a ``lax.scan`` of ``step`` over ``batches`` (n_batches, batch_size) of indices."""
    import jax

    def epoch(params, opt_state, totals, x_all, y_all, batches):
        def body(carry, index):
            return step(*carry, x_all, y_all, index), None

        (params, opt_state, totals), _ = jax.lax.scan(body, (params, opt_state, totals), batches)
        return params, opt_state, totals

    return epoch


class JaxAdapter:
    """The tutorial model as a params dict, optax Adam, trained in the style ``"loop"`` or ``"scan"``.

    optax's Adam (lr 1e-3, b1 0.9, b2 0.999, eps 1e-7) places ε like PyTorch's: it divides the
    bias-corrected m̂ by ``sqrt(v̂) + ε``. The loss is optax's integer-label softmax
    cross-entropy on the logits (the batch mean); predictions apply softmax.
    """

    def __init__(self, style, threads=None):
        import jax
        import optax

        if style not in ("loop", "scan"):
            raise ValueError(f"expected style 'loop' or 'scan', received {style!r}")
        self.jax, self.optax, self.style = jax, optax, style
        # lax.scan's length is the number of batches: a shorter warm-up would compile another shape
        self.compiles_whole_epochs = style == "scan"
        self.threads = threads  # XLA's CPU thread pool has no public setting; recorded only
        self.clock = CompileClock()
        self.optimizer = optax.adam(1e-3, b1=0.9, b2=0.999, eps=1e-7)
        self._step = jax.jit(make_step(self.optimizer), donate_argnums=(0, 1, 2))
        self._epoch = jax.jit(make_epoch(make_step(self.optimizer)), donate_argnums=(0, 1, 2))
        self._probabilities = jax.jit(lambda params, x: jax.nn.softmax(forward(params, x)))
        self.model = None

    def build(self, hidden, seed):
        rng = np.random.default_rng(seed)
        params = {"kernel_0": glorot_uniform(rng, 784, hidden), "bias_0": np.zeros(hidden, np.float32),
                  "kernel_1": glorot_uniform(rng, hidden, 10), "bias_1": np.zeros(10, np.float32)}
        self.params = self.jax.device_put(params)
        self.opt_state = self.optimizer.init(self.params)
        self.shuffle_rng = np.random.default_rng(seed)
        self.model = "params"
        self.clock.seconds = 0.0  # compile time is counted per model

    def fit(self, x, y, epochs, batch_size, timer):
        with self.clock.timing():
            return self._fit(x, y, epochs, batch_size, timer)

    def _fit(self, x, y, epochs, batch_size, timer):
        jnp = self.jax.numpy
        x_all, y_all = self.jax.device_put(x), self.jax.device_put(y.astype(np.int32))
        n = x.shape[0]
        history = {"loss": [], "accuracy": []}
        for _ in range(epochs):
            timer.epoch_began()
            order = self.shuffle_rng.permutation(n).astype(np.int32)
            totals = jnp.zeros(2, jnp.float32)
            if self.style == "scan":
                totals = self._scan_epoch(order, batch_size, totals, x_all, y_all)
            else:
                totals = self._loop_epoch(order, batch_size, totals, x_all, y_all, timer)
            loss_sum, n_correct = np.asarray(totals)  # waits for the epoch's last step
            timer.epoch_ended()
            history["loss"].append(float(loss_sum) / n)
            history["accuracy"].append(float(n_correct) / n)
        return history

    def _loop_epoch(self, order, batch_size, totals, x_all, y_all, timer):
        for start in range(0, order.shape[0], batch_size):
            self.params, self.opt_state, totals = self._step(
                self.params, self.opt_state, totals, x_all, y_all, order[start:start + batch_size])
            if timer.first_step_end is None:
                totals.block_until_ready()  # once per fit: the end of the first step
                timer.step_ended()
        return totals

    def _scan_epoch(self, order, batch_size, totals, x_all, y_all):
        n_full = order.shape[0] // batch_size * batch_size
        if n_full:
            batches = order[:n_full].reshape(-1, batch_size)
            self.params, self.opt_state, totals = self._epoch(
                self.params, self.opt_state, totals, x_all, y_all, batches)
        if n_full < order.shape[0]:
            self.params, self.opt_state, totals = self._step(
                self.params, self.opt_state, totals, x_all, y_all, order[n_full:])
        return totals

    def predict(self, x, batch_size=None):
        """``softmax(forward(params, x))`` jitted, on all of x at once (batch_size unused)."""
        return np.asarray(self._probabilities(self.params, x))

    call = predict

    def compile_report(self):
        return self.clock.report()

    def info(self):
        return jax_info(self.jax, optax=self.optax.__version__, style=self.style)


def jax_info(jax, **extra):
    """Versions, devices and XLA's flags, for the result's ``info``."""
    import os

    import jaxlib

    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__,
            "devices": [str(device) for device in jax.devices()],
            "XLA_FLAGS": os.environ.get("XLA_FLAGS"),
            "persistent_compilation_cache_dir": jax.config.jax_compilation_cache_dir, **extra}


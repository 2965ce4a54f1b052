"""The frameworks the harness times, each behind the same small adapter.

An adapter builds the tutorial model (``Flatten -> Dense(hidden, relu) -> Dense(10, softmax)``,
Adam with Keras's settings, sparse categorical cross-entropy) and offers what a user of that
framework would call:

* ``fit(x, y, epochs, batch_size, timer)``: train with shuffling; ``timer`` (a :class:`FitTimer`)
  receives the end of the first step and each epoch's start and end, and the adapter returns
  ``{"loss": [...], "accuracy": [...]}`` per epoch;
* ``predict(x, batch_size)``: the framework's natural predict call, probabilities (n, 10);
* ``call(x)``: applying the model to an array directly (``model(x)``), probabilities (n, 10);
* ``compile_report()``: the pure compile time of the ``fit`` calls so far, where the framework
  exposes it (``{"compile_s": seconds or None, "how": ...}``); the first epoch against the warm
  ones shows every framework's start-up cost either way.

x is (n, 28, 28) float32 in [0, 1] and y (n,) integer labels, the same arrays for everyone.
Nothing here imports a framework at module level: the parent process imports this module to
know the frameworks' names and whether they are installed, and only the child process that
runs a framework imports it.
"""

import importlib.util
import os
import time

#: Name -> (label for tables, modules that must be importable, how to install it).
FRAMEWORKS = {
    "npnet-numba": ("npnet (numba)", ("numba", "scipy", "npnet.backends.numba_backend"),
                    "the numba backend, npnet/backends/numba_backend.py, is not present"),
    "npnet-numba-threads": ("npnet (numba, all threads)", ("numba", "scipy", "npnet.backends.numba_backend"),
                            "the numba backend, npnet/backends/numba_backend.py, is not present"),
    "npnet-numpy": ("npnet (numpy)", ("npnet",), "npnet is not importable"),
    "tf.keras": ("tf.keras", ("tensorflow", "reference.keras_model"),
                 "TensorFlow is not installed (pip install 'npnet[reference]')"),
    "keras-jax": ("Keras 3 (JAX)", ("keras", "jax"),
                  "Keras 3 or JAX is not installed (pip install 'npnet[bench]')"),
    "pytorch": ("PyTorch", ("torch",), "PyTorch is not installed (pip install 'npnet[bench]')"),
    "pytorch-compile": ("PyTorch (torch.compile)", ("torch",),
                        "PyTorch is not installed (pip install 'npnet[bench]')"),
    "jax-loop": ("JAX + optax (jit step)", ("jax", "optax"),
                 "JAX or optax is not installed (pip install 'npnet[bench]')"),
    "jax-scan": ("JAX + optax (lax.scan epoch)", ("jax", "optax"),
                 "JAX or optax is not installed (pip install 'npnet[bench]')"),
}
#: The reference every ratio is taken against.
BASELINE = "tf.keras"
#: Environment variables a framework's child process needs before it imports anything.
CHILD_ENV = {"keras-jax": {"KERAS_BACKEND": "jax"}}
#: The on-disk compilation cache of a framework that keeps one, by its environment variable:
#: the harness gives cold runs an empty directory and warm runs one filled by a cold run.
JIT_CACHE_ENV = {"npnet-numba": "NUMBA_CACHE_DIR", "pytorch-compile": "TORCHINDUCTOR_CACHE_DIR"}
#: A framework that ships code compiled when it was installed, and the variables that turn that
#: off: the harness adds cold runs without it, so a true cold compile is reported too.
PRECOMPILED_OFF_ENV = {"npnet-numba": {"NPNET_PRECOMPILED": "0"}}


def names():
    return list(FRAMEWORKS)


def label(name):
    return FRAMEWORKS[name][0]


def not_measured(how):
    """A ``compile_report()`` for a framework that does not expose its compile time."""
    return {"compile_s": None, "how": how}


def missing_reason(name):
    """None when ``name`` can run here, else why not (without importing the framework)."""
    _, modules, reason = FRAMEWORKS[name]
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:  # a parent package is missing
            found = False
        if not found:
            return reason
    return None


class FitTimer:
    """Collects wall-clock times during ``fit``: the end of the first step and each epoch.

    ``first_step_end`` is a ``time.time()`` stamp (comparable with the parent's launch time);
    ``epoch_s`` lists the epochs' durations measured with ``time.perf_counter``.
    """

    def __init__(self):
        self.first_step_end = None
        self.epoch_s = []
        self._epoch_start = None

    def step_ended(self):
        if self.first_step_end is None:
            self.first_step_end = time.time()

    def epoch_began(self):
        self._epoch_start = time.perf_counter()

    def epoch_ended(self):
        self.epoch_s.append(time.perf_counter() - self._epoch_start)
        self.step_ended()  # an epoch of a single step ends with its first step


# ----------------------------------------------------------------------------- npnet


class NpnetAdapter:
    """npnet's Sequential on one backend, built through :mod:`reference.npnet_model`."""

    def __init__(self, backend, all_threads=False):
        # Thread counts reach numpy's BLAS and numba through the environment variables
        # the parent sets (see benchmarks.runner.child_environment). npnet's default
        # (config.set_num_threads(None)) keeps the tutorial on one thread; ``all_threads``
        # shares its products among all of numba's threads instead.
        import npnet

        self.npnet = npnet
        self.backend = backend
        if all_threads:
            import numba

            npnet.config.set_num_threads(numba.config.NUMBA_NUM_THREADS)

    def build(self, hidden, seed):
        from reference import npnet_model

        self.npnet.utils.set_random_seed(seed)
        if hidden == npnet_model.TUTORIAL_UNITS[0]:
            self.model = npnet_model.tutorial_model(backend=self.backend)
        else:
            self.model = npnet_model.dense_stack((hidden, 10), ("relu", "softmax"), backend=self.backend)

    def fit(self, x, y, epochs, batch_size, timer):
        npnet = self.npnet
        # The batch hook below only takes the time, so fit keeps the number of batches per
        # compiled call a user without batch callbacks gets ('auto'); the hook then runs once
        # per call, and the end of step 1 is seen when the first call returns (a few ms late).
        self.model.steps_per_execution = npnet.training_loop.AUTO_STEPS_PER_EXECUTION

        class Timing(npnet.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                timer.epoch_began()

            def on_train_batch_end(self, batch, logs=None):
                timer.step_ended()  # keeps only the first

            def on_epoch_end(self, epoch, logs=None):
                timer.epoch_ended()

        history = self.model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0,
                                 callbacks=[Timing()])
        return {"loss": list(history.history["loss"]), "accuracy": list(history.history["accuracy"])}

    def predict(self, x, batch_size=None):
        return self.model.predict(x, batch_size=batch_size)

    def call(self, x):
        return self.model(x)

    def onnx_predictor(self):
        """onnxruntime on this model exported to ONNX (``model.export``), or None when
        onnx/onnxruntime are not installed: the inference runtime a benchmarker hands it to."""
        try:
            import onnxruntime
        except ImportError:
            return None
        import tempfile

        path = os.path.join(tempfile.mkdtemp(prefix="npnet-bench-"), "model.onnx")
        self.model.export(path, format="onnx")
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x.astype("float32", copy=False)})[0]

    def compile_report(self):
        if self.backend == "numba":
            return not_measured("not separable: numba compiles (or loads from its on-disk cache) "
                                "inside the first calls; compare the cold-JIT-cache rows")
        return not_measured("nothing to compile: NumPy")

    def info(self):
        import numpy as np

        from .environment import threadpools

        info = {"npnet": self.npnet.__version__, "numpy": np.__version__,
                "npnet_num_threads": self.npnet.config.num_threads(),
                "numpy_blas": _numpy_blas(), "backend": self.backend, "threadpools": threadpools()}
        if self.backend == "numba":
            import numba
            import scipy

            info.update(numba=numba.__version__, numba_threads=numba.get_num_threads(),
                        numba_threading_layer=_numba_threading_layer(numba),
                        numba_cache_dir=os.environ.get("NUMBA_CACHE_DIR"),
                        scipy=scipy.__version__, scipy_blas=_show_config_blas(scipy))
        return info


def _numpy_blas():
    import numpy as np

    return _show_config_blas(np)


def _show_config_blas(module):
    """The BLAS entry of ``module.show_config(mode='dicts')`` (numpy, scipy), or None."""
    try:
        config = module.show_config(mode="dicts")
        return config["Build Dependencies"]["blas"]
    except Exception:  # older versions or an unexpected layout: the version is still recorded
        return None


def _numba_threading_layer(numba):
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet, so no layer was chosen
        return None


# ----------------------------------------------------------------------------- tf.keras


class KerasAdapter:
    """The seed's tf.keras model, built by :mod:`reference.keras_model`."""

    def __init__(self, threads=None):
        from reference import keras_model  # imports TensorFlow (and quiets its C++ logging)

        self.keras_model = keras_model
        self.tf = keras_model.tf
        self.keras = keras_model.keras
        if threads:
            self.tf.config.threading.set_intra_op_parallelism_threads(threads)
            self.tf.config.threading.set_inter_op_parallelism_threads(threads)

    def build(self, hidden, seed):
        self.tf.keras.utils.set_random_seed(seed)
        if hidden == 128:
            self.model = self.keras_model.tutorial_model()
        else:
            self.model = self.keras_model.dense_stack((hidden, 10), ("relu", "softmax"))

    def fit(self, x, y, epochs, batch_size, timer):
        keras = self.keras

        class Timing(keras.callbacks.Callback):
            # Only *begin* batch hooks here: a Keras callback that defines on_train_batch_end
            # turns off Keras's asynchronous batch-end dispatch and would slow fit down.
            # Batch 1 begins right after the first step's train function has returned.
            def on_epoch_begin(self, epoch, logs=None):
                timer.epoch_began()

            def on_train_batch_begin(self, batch, logs=None):
                if batch == 1:
                    timer.step_ended()

            def on_epoch_end(self, epoch, logs=None):
                timer.epoch_ended()

        history = self.model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0,
                                 callbacks=[Timing()])
        return {"loss": list(history.history["loss"]), "accuracy": list(history.history["accuracy"])}

    def predict(self, x, batch_size=None):
        return self.model.predict(x, batch_size=batch_size, verbose=0)

    def call(self, x):
        return self.model(x, training=False).numpy()

    def compile_report(self):
        return not_measured("not exposed: tf.function tracing happens inside the first steps")

    def info(self):
        tf = self.tf
        build = dict(tf.sysconfig.get_build_info())
        return {**self.keras_model.versions(),
                "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
                "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on for x86 CPUs)"),
                "build_info": {k: str(v) for k, v in build.items()}}


class KerasJaxAdapter(KerasAdapter):
    """The same model in standalone Keras 3 on the JAX backend (``KERAS_BACKEND=jax``).

    The harness sets ``KERAS_BACKEND`` in this child's environment (``CHILD_ENV``) before
    anything imports Keras. ``fit``, ``predict`` and the timing callbacks are tf.keras's
    (:class:`KerasAdapter`): Keras's defaults, ``jit_compile`` on and one step per call.
    """

    def __init__(self, threads=None):
        if os.environ.get("KERAS_BACKEND") != "jax":
            raise RuntimeError("keras-jax needs KERAS_BACKEND=jax in the environment before "
                               f"Keras is imported; received {os.environ.get('KERAS_BACKEND')!r}")
        import keras

        from .jax_adapters import CompileClock

        if keras.backend.backend() != "jax":
            raise RuntimeError(f"Keras is on the {keras.backend.backend()!r} backend, expected 'jax'")
        self.keras = keras
        self.threads = threads  # XLA's CPU thread pool has no public setting; recorded only
        self.clock = CompileClock()

    def build(self, hidden, seed):
        import numpy as np

        keras = self.keras
        # Not keras.utils.set_random_seed: it imports TensorFlow when installed (to seed
        # tf.data), which a Keras-on-JAX process does not otherwise load. NumPy's global
        # generator is what Keras's array adapter shuffles with; the kernels get their seeds.
        np.random.seed(seed)
        glorot = keras.initializers.GlorotUniform
        self.model = keras.Sequential([
            keras.Input(shape=(28, 28)),  # what the tutorial's Flatten(input_shape=(28, 28)) builds
            keras.layers.Flatten(),
            keras.layers.Dense(hidden, activation="relu", kernel_initializer=glorot(seed=seed)),
            keras.layers.Dense(10, activation="softmax", kernel_initializer=glorot(seed=seed + 1)),
        ])
        self.model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        self.clock.seconds = 0.0  # compile time is counted per model

    def fit(self, x, y, epochs, batch_size, timer):
        with self.clock.timing():
            return super().fit(x, y, epochs, batch_size, timer)

    def call(self, x):
        return self.keras.ops.convert_to_numpy(self.model(x, training=False))

    def compile_report(self):
        return self.clock.report()

    def info(self):
        import sys

        from .jax_adapters import jax_info

        import jax

        return jax_info(jax, keras=self.keras.__version__, keras_backend=self.keras.backend.backend(),
                        tensorflow_imported="tensorflow" in sys.modules)


# ----------------------------------------------------------------------------- PyTorch


class TorchAdapter:
    """An equivalent ``nn.Sequential`` trained with a plain PyTorch loop.

    Adam is configured like Keras's (lr 1e-3, betas (0.9, 0.999), eps 1e-7), but its ε sits
    elsewhere: PyTorch divides by ``sqrt(v̂) + ε`` with v bias-corrected first, Keras by
    ``sqrt(v) + ε`` with the correction folded into the step size. The weights start like
    Keras's (glorot-uniform kernels, zero biases). The loss is ``CrossEntropyLoss`` on the
    logits (softmax + sparse cross-entropy, as Keras computes it); predictions apply softmax.

    ``compiled=True`` runs the model through ``torch.compile(model, dynamic=False)`` (the
    default inductor backend; one static-shape graph per batch shape, as JAX compiles one per
    shape) in training and prediction alike; the loss, ``backward`` and Adam's step stay eager.
    """

    def __init__(self, threads=None, compiled=False):
        import torch

        self.torch = torch
        self.compiled = compiled
        self._compile_seconds = _torch_compile_seconds(torch) if compiled else None
        if threads:
            torch.set_num_threads(threads)
            torch.set_num_interop_threads(threads)

    def build(self, hidden, seed):
        torch, nn = self.torch, self.torch.nn
        torch.manual_seed(seed)
        self.generator = torch.Generator().manual_seed(seed)
        self.model = nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))
        for layer in self.model:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)  # Keras's glorot_uniform
                nn.init.zeros_(layer.bias)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
        self.loss_fn = nn.CrossEntropyLoss()
        self.forward = self.model
        if self.compiled:
            torch._dynamo.reset()  # a new model: no earlier graphs count against the recompile limit
            self.forward = torch.compile(self.model, dynamic=False)
            self._fit_compile_s = 0.0

    def fit(self, x, y, epochs, batch_size, timer):
        if self._compile_seconds is None:
            return self._fit(x, y, epochs, batch_size, timer)
        before = self._compile_seconds()
        history = self._fit(x, y, epochs, batch_size, timer)
        self._fit_compile_s += self._compile_seconds() - before
        return history

    def _fit(self, x, y, epochs, batch_size, timer):
        torch = self.torch
        x_all = torch.from_numpy(x)
        y_all = torch.from_numpy(y.astype("int64"))
        n = x_all.shape[0]
        history = {"loss": [], "accuracy": []}
        self.model.train()
        for _ in range(epochs):
            timer.epoch_began()
            order = torch.randperm(n, generator=self.generator)
            loss_sum, n_correct = 0.0, 0
            for start in range(0, n, batch_size):
                index = order[start:start + batch_size]
                xb, yb = x_all[index], y_all[index]
                self.optimizer.zero_grad(set_to_none=True)
                logits = self.forward(xb)
                loss = self.loss_fn(logits, yb)
                loss.backward()
                self.optimizer.step()
                # The running loss and accuracy Keras's and npnet's fit keep too.
                loss_sum += loss.item() * yb.shape[0]
                n_correct += int((logits.argmax(1) == yb).sum())
                timer.step_ended()
            timer.epoch_ended()
            history["loss"].append(loss_sum / n)
            history["accuracy"].append(n_correct / n)
        return history

    def predict(self, x, batch_size=None):
        """``with torch.no_grad(): softmax(model(x))`` on all of x in one go (batch_size unused)."""
        torch = self.torch
        self.model.eval()
        with torch.no_grad():
            return torch.softmax(self.forward(torch.from_numpy(x)), dim=1).numpy()

    call = predict

    def compile_report(self):
        if not self.compiled:
            return not_measured("nothing to compile: eager mode")
        if self._compile_seconds is None:
            return not_measured("this torch has no torch._dynamo.utils.compilation_time_metrics")
        return {"compile_s": self._fit_compile_s,
                "how": "torch._dynamo's compile-time records during fit: the forward graph "
                       "(_compile.compile_inner) plus the backward graph (bw_compiler)"}

    def info(self):
        torch = self.torch
        return {"torch": torch.__version__, "compiled": self.compiled, "threads": torch.get_num_threads(),
                "interop_threads": torch.get_num_interop_threads(),
                "mkldnn": bool(torch.backends.mkldnn.is_available()),
                "parallel_info": torch.__config__.parallel_info(),
                "config": torch.__config__.show(),
                "inductor_cache_dir": os.environ.get("TORCHINDUCTOR_CACHE_DIR")}


def _torch_compile_seconds(torch):
    """A function returning the seconds torch.compile has spent so far in this process, or
    None when this version of torch does not keep those records.

    It reads ``torch._dynamo.utils.compilation_time_metrics`` (not a public API): the forward
    graph's compilation (``_compile.compile_inner``, which includes inductor's codegen) and
    the backward graph's, compiled when ``backward`` first runs (``...bw_compiler``).
    """
    from torch._dynamo import utils

    if not isinstance(getattr(utils, "compilation_time_metrics", None), dict):
        return None

    def seconds():
        metrics = utils.compilation_time_metrics
        keys = [k for k in metrics if k == "_compile.compile_inner" or k.endswith("bw_compiler")]
        return float(sum(sum(metrics[k]) for k in keys))

    return seconds


def create(name, threads=None):
    """The adapter for framework ``name`` (this imports the framework)."""
    if name == "npnet-numba":
        return NpnetAdapter("numba")
    if name == "npnet-numba-threads":
        return NpnetAdapter("numba", all_threads=True)
    if name == "npnet-numpy":
        return NpnetAdapter("numpy")
    if name == "tf.keras":
        return KerasAdapter(threads=threads)
    if name == "keras-jax":
        return KerasJaxAdapter(threads=threads)
    if name == "pytorch":
        return TorchAdapter(threads=threads)
    if name == "pytorch-compile":
        return TorchAdapter(threads=threads, compiled=True)
    if name in ("jax-loop", "jax-scan"):
        from .jax_adapters import JaxAdapter

        return JaxAdapter(name.split("-")[1], threads=threads)
    raise ValueError(f"unknown framework {name!r}; expected one of {', '.join(FRAMEWORKS)}")

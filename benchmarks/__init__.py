"""Side-by-side timing, memory and accuracy of npnet, tf.keras, Keras 3 on JAX, PyTorch (eager
and torch.compile) and JAX + optax (jitted step, jitted lax.scan epoch) on the tutorial.

``python -m benchmarks`` runs the TensorFlow basic-classification workload (Fashion-MNIST,
784-128-10, Adam, batch 32) once per framework and repeat, each in a fresh process, and
prints a Markdown table; ``--json``, ``--plot``, ``--sweep`` and ``--quick`` are described by
``python -m benchmarks --help``.

Modules: ``cli`` (the command), ``child`` (one run inside its own process), ``frameworks``
(one adapter per framework), ``runner`` (starting children, their peak memory),
``jax_adapters`` (the JAX + optax training loops and JAX's compile clock),
``environment`` (machine, versions, GEMM rate, FLOP count), ``report`` (summaries and
Markdown), ``plot`` (the PNG).
"""

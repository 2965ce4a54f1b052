"""The seed tutorial in tf.keras, and the evidence that npnet matches it.

* :mod:`reference.keras_model` — the tutorial's model built and compiled exactly as the
  tutorial writes it, other ``Flatten, Dense...`` stacks, weight transfer both ways
  (``npnet_to_keras``, ``keras_to_npnet``, ``keras_twin``, ``npnet_twin``), and Keras's loss
  and gradients by ``tf.GradientTape``. The only module here that imports TensorFlow.
* :mod:`reference.npnet_model` — the same models in npnet.
* :mod:`reference.data` — Fashion-MNIST through npnet's loader, scaled once, for both sides.
* :mod:`reference.compare` — the error measures and the ours-next-to-theirs mismatch text.
* :mod:`reference.crosscheck` — ``python -m reference.crosscheck``, the report.

Importing this package imports nothing heavy; TensorFlow loads with ``reference.keras_model``.
"""

"""What a model does not use is not compiled: the other activations, the binary and
regression losses, Keras's other losses of such targets, the L1 penalty and the pairwise sum
of a one-unit layer's bias gradient (npnet.kernels.dense's module docstring).

One fresh Python process with an empty ``NUMBA_CACHE_DIR`` trains, evaluates and predicts
with a few models, and after each lists the kernels numba compiled (a dispatcher compiles a
callee for its argument types when a caller's compile reaches it, so an untouched kernel has
no signature).
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("numba")

REPO = Path(__file__).resolve().parents[1]

_RUN = textwrap.dedent("""
    import json
    import numpy as np
    import npnet
    from npnet import layers
    from npnet.kernels import dense as K

    def compiled():
        return sorted(name for name, value in vars(K).items() if hasattr(value, "signatures") and value.signatures)

    def train(stack, loss, optimizer, y, metrics=("accuracy",), **fit_options):
        npnet.utils.set_random_seed(0)
        model = npnet.Sequential(stack)
        model.compile(optimizer=optimizer, loss=loss, metrics=list(metrics), backend="numba")
        x = np.random.default_rng(0).normal(size=(64, 4, 4)).astype(np.float32)
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, **fit_options)
        model.evaluate(x, y, verbose=0)
        model.predict(x, verbose=0)
        return compiled()

    labels = np.arange(64) % 3
    result = {}
    result["tutorial"] = train([layers.Flatten(input_shape=(4, 4)), layers.Dense(8, activation="relu"),
                                layers.Dense(3, activation="softmax")], "sparse_categorical_crossentropy",
                               "adam", labels)
    result["l2, sigmoid output"] = train([layers.Flatten(input_shape=(4, 4)),
                                          layers.Dense(8, activation="tanh", kernel_regularizer="l2"),
                                          layers.Dense(3, activation="sigmoid")],
                                         "sparse_categorical_crossentropy", "sgd", labels)
    result["binary, metrics of the outputs"] = train([layers.Flatten(input_shape=(4, 4)),
                                                      layers.Dense(1, activation="sigmoid")],
                                                     "binary_crossentropy", "adam", labels % 2, ["accuracy", "auc"])
    result["weighted, smoothed"] = train([layers.Flatten(input_shape=(4, 4)), layers.Dense(3, activation="softmax")],
                                         npnet.losses.CategoricalCrossentropy(label_smoothing=0.1), "adam",
                                         np.eye(3)[labels], sample_weight=np.linspace(0, 1, 64))
    regression = [layers.Flatten(input_shape=(4, 4)), layers.Dense(3)]
    targets = np.random.default_rng(1).normal(size=(64, 3))
    result["mse"] = train(regression, "mse", "adam", targets, ())
    result["hinge"] = train([layers.Flatten(input_shape=(4, 4)), layers.Dense(3)], "hinge", "adam",
                            (targets > 0).astype(float), ())
    print(json.dumps(result))
""")

#: kernels only a model with another activation, a binary or regression loss, or an L1 term needs
OTHER_ACTIVATIONS = {"any_activation_forward", "any_activation_backward", "other_activation_forward",
                     "other_activation_backward", "sigmoid_of", "erf_of", "relu_general_forward",
                     "relu_general_backward"}
TARGET_LOSSES = {"target_loss", "target_gradient", "target_entry_loss", "sign_of"}
#: what only a model with one of Keras's other losses of such targets (an ``OtherLoss``) needs
OTHER_LOSSES = {"other_loss_value", "other_loss_gradient", "other_sample_loss", "other_entry_loss",
                "other_row_gradient", "other_entry_gradient", "hinge_batch", "binary_targets", "log_of",
                "kl_divergence_row", "categorical_hinge_parts", "inverse_norm", "unit_dot"}
L1 = {"l1_penalty", "add_l1_penalty_gradient"}
#: what only a model whose metrics read the outputs needs, a fit with sample weights, label smoothing
KEPT_OUTPUTS = {"keep_rows"}
WEIGHTED = {"gather_weights", "scale_rows"}
SMOOTHED = {"smooth_targets"}
#: the sum NumPy makes of a one-unit layer's bias gradient (pairwise)
ONE_UNIT = {"pairwise_sum", "pairwise_block"}
#: none of which the tutorial or an L2 model compiles
UNUSED = OTHER_ACTIVATIONS | TARGET_LOSSES | OTHER_LOSSES | L1 | KEPT_OUTPUTS | WEIGHTED | SMOOTHED | ONE_UNIT


def test_the_tutorial_and_an_l2_model_compile_none_of_the_other_pieces(tmp_path):
    # NPNET_PRECOMPILED=0: what the model makes numba compile, not what the install's
    # precompiled layer already holds
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(REPO), "NPNET_BACKEND": "numba",
           "NPNET_PRECOMPILED": "0"}
    done = subprocess.run([sys.executable, "-c", _RUN], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    tutorial, l2_model = set(result["tutorial"]), set(result["l2, sigmoid output"])
    assert {"train_batches", "forward_pass", "log_softmax_sum"} <= tutorial
    assert not tutorial & (UNUSED | {"weight_penalty"}), sorted(tutorial)
    assert {"weight_penalty", "l2_penalty", "crossentropy_probabilities_sum"} <= l2_model
    assert not l2_model & UNUSED, sorted(l2_model)
    assert KEPT_OUTPUTS | ONE_UNIT <= set(result["binary, metrics of the outputs"])
    assert WEIGHTED | SMOOTHED <= set(result["weighted, smoothed"])
    for name in ("binary, metrics of the outputs", "weighted, smoothed", "mse"):
        assert not set(result[name]) & OTHER_LOSSES, (name, sorted(set(result[name]) & OTHER_LOSSES))
    assert {"target_loss", "target_gradient"} <= set(result["mse"])
    assert OTHER_LOSSES <= set(result["hinge"]), sorted(OTHER_LOSSES - set(result["hinge"]))

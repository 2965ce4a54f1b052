"""Write ``tests/data/keras2_tiny.h5`` with genuine Keras 2 (the ``tf-keras`` package), and
the inputs and predictions it must give (``keras2_tiny_expected.npz``).

The tests read the committed files, so they need neither tf-keras nor TensorFlow. To
regenerate: ``pip install --target DIR tf-keras==2.21.0`` (it must match TensorFlow's
version), then ``PYTHONPATH=DIR python -m reference.make_keras2_fixture``.
"""

import os
import sys

import numpy as np

OUT_DIR = os.path.join(os.path.dirname(__file__), os.pardir, "tests", "data")


def main(out_dir=OUT_DIR):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tf_keras as keras2

    keras2.utils.set_random_seed(0)
    model = keras2.Sequential([keras2.layers.Flatten(input_shape=(4, 3)),
                               keras2.layers.Dense(5, activation="relu"),
                               keras2.layers.Dropout(0.1),
                               keras2.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras2.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.random((16, 4, 3), dtype=np.float32)
    y = rng.integers(0, 3, 16)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    os.makedirs(out_dir, exist_ok=True)
    model.save(os.path.join(out_dir, "keras2_tiny.h5"))
    np.savez(os.path.join(out_dir, "keras2_tiny_expected.npz"), x=x,
             predictions=model.predict(x, verbose=0), keras_version=np.array(keras2.__version__))
    print(f"wrote keras2_tiny.h5 (Keras {keras2.__version__}) to {os.path.abspath(out_dir)}", file=sys.stderr)


if __name__ == "__main__":
    main()

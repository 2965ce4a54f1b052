import numpy as np, npnet, time
from npnet import layers, utils, losses
cases = {"mse": ("linear", lambda: losses.MeanSquaredError(), False), "mae": ("tanh", lambda: losses.MeanAbsoluteError(), False),
         "huber": ("linear", lambda: losses.Huber(delta=0.7), False), "bce sigmoid head": ("sigmoid", lambda: losses.BinaryCrossentropy(), True),
         "bce logits": ("linear", lambda: losses.BinaryCrossentropy(from_logits=True), True),
         "bce probs softmax": ("softmax", lambda: losses.BinaryCrossentropy(), True),
         "bce sigmoid from_logits": ("sigmoid", lambda: losses.BinaryCrossentropy(from_logits=True), True)}
for floatx in ("float32", "float64"):
  npnet.config.set_floatx(floatx)
  for units in (1, 3):
    for name, (out, mk, binary) in cases.items():
        ms = []
        for backend in ("numpy", "numba"):
            utils.set_random_seed(0)
            m = npnet.Sequential([layers.Dense(16, activation="relu"), layers.Dense(units, activation=out)])
            m.build((None, 12)); m.compile(optimizer="adam", loss=mk(), metrics=[], backend=backend); ms.append(m)
        ms[1].set_weights(ms[0].get_weights())
        rng = np.random.default_rng(1); x = rng.standard_normal((3190, 12))
        y = (rng.random((3190, units)) > 0.5).astype(float) if binary else rng.standard_normal((3190, units))
        h = []
        for m in ms:
            utils.set_random_seed(2); h.append(m.fit(x, y, batch_size=32, epochs=1, verbose=0).history["loss"])
        d = max(float(np.max(np.abs(a - b))) for a, b in zip(ms[0].get_weights(), ms[1].get_weights()))
        ev = [m.evaluate(x, y, verbose=0) for m in ms]
        print(floatx, units, name, d, h[0][0], h[1][0], ev)

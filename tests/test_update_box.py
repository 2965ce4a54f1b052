"""The NumPy backend proves most steps finite from running bounds instead of copying and
checking every weight and slot (npnet.update_box): the same numbers, true bounds, and the
exact check wherever the proof does not hold."""

import numpy as np
import pytest

import npnet
from npnet import functional as F
from npnet import layers, optimizers, schedules, update_box, utils

FAMILIES = {
    "adam": lambda: optimizers.Adam(),
    "adam, schedule": lambda: optimizers.Adam(schedules.ExponentialDecay(0.01, 5, 0.5)),
    "sgd": lambda: optimizers.SGD(),
    "sgd, nesterov": lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "sgd, momentum": lambda: optimizers.SGD(0.05, momentum=0.5),
    "rmsprop": lambda: optimizers.RMSprop(),
    "rmsprop, momentum": lambda: optimizers.RMSprop(momentum=0.5),
    "rmsprop, centered": lambda: optimizers.RMSprop(centered=True),
}


def _model(make_optimizer, dtype, seed=0):
    previous = npnet.config.floatx()
    npnet.config.set_floatx(dtype)
    try:
        utils.set_random_seed(seed)
        model = npnet.Sequential([layers.Dense(16, activation="relu"), layers.Dropout(0.2),
                                  layers.Dense(4, activation="softmax")])
        model.compile(optimizer=make_optimizer(), loss="sparse_categorical_crossentropy", backend="numpy")
        model.build((None, 12))
    finally:
        npnet.config.set_floatx(previous)
    return model


def _data(scale=1.0):
    rng = np.random.default_rng(1)
    return rng.standard_normal((70, 12)) * scale, rng.integers(0, 4, 70)


def _state(model):
    slots = [a for arrays in (model.optimizer.state or {}).values() for a in arrays]
    return [w.copy() for w in model.get_weights()] + [s.copy() for s in slots], model.optimizer.iterations


class _Counting:
    """Wraps RunningBounds.proves to count its answers; ``refuse`` makes every answer False."""

    def __init__(self, monkeypatch, refuse=False):
        self.answers = []
        original = update_box.RunningBounds.proves

        def proves(bounds, largest_gradient, learning_rate):
            answer = False if refuse else original(bounds, largest_gradient, learning_rate)
            self.answers.append(answer)
            return answer
        monkeypatch.setattr(update_box.RunningBounds, "proves", proves)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("family", FAMILIES)
def test_proven_steps_give_the_numbers_of_checked_steps(family, dtype, monkeypatch):
    x, y = _data()
    proven = _model(FAMILIES[family], dtype)
    with monkeypatch.context() as patch:
        counting = _Counting(patch)
        proven.fit(x, y, batch_size=8, epochs=3, verbose=0)
    checked = _model(FAMILIES[family], dtype)
    with monkeypatch.context() as patch:
        _Counting(patch, refuse=True)
        checked.fit(x, y, batch_size=8, epochs=3, verbose=0)
    (a, a_steps), (b, b_steps) = _state(proven), _state(checked)
    assert a_steps == b_steps == 27
    for got, expected in zip(a, b):
        np.testing.assert_array_equal(got, expected)
    assert counting.answers.count(True) == 27


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_running_bounds_stay_above_the_true_maxima(family, dtype):
    """Step by step, with large inputs (large gradients), the carried bounds never fall below
    the weights' and slots' true largest magnitudes."""
    model = _model(FAMILIES[family], dtype)
    x, y = _data(scale=50.0)
    x = x.astype(dtype)
    trainer = model.backend
    params = trainer.trainable_weights()
    bounds = update_box.RunningBounds(model.optimizer, params)
    proven = 0
    for step in range(60):
        batch = slice((step % 8) * 8, (step % 8) * 8 + 8)
        loss, n_correct, applied = trainer.train_batch(x[batch], y[batch], bounds=bounds)
        if not applied:  # diverged (SGD at this scale): the loss or a gradient is not finite
            break
        if bounds.measured is None:  # checked exactly: nothing carried to compare
            continue
        proven += 1
        for kind, value in _true_maxima(model.optimizer, params).items():
            assert value <= bounds.measured[kind], (step, kind, value, bounds.measured[kind])
    assert proven >= 20


def _true_maxima(optimizer, params):
    """The largest magnitude of the weights and of each kind of slot the bounds carry."""
    return update_box.by_kind(params, optimizer.state, update_box.largest_magnitude)


def test_measured_bounds_are_at_least_the_true_maxima_and_close_to_them():
    """The bounds a training call starts from (one dot product per array) are upper bounds
    of the true largest magnitudes, and within sqrt(number of entries) of them."""
    model = _model(FAMILIES["adam"], "float32")
    x, y = _data(scale=50.0)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    params = model.backend.trainable_weights()
    measured = update_box.RunningBounds(model.optimizer, params)._measure()
    entries = sum(p.size for p in params)  # per parameter, so per slot of one kind
    for kind, value in _true_maxima(model.optimizer, params).items():
        assert value <= measured[kind] <= value * np.sqrt(entries) * 1.01 + 1e-18, (kind, value, measured)


def test_a_weight_outside_the_box_sends_the_step_to_the_exact_check():
    """A weight beyond the box (L/4) cannot be vouched for: the step is computed and checked,
    and one that would overflow is refused with nothing changed."""
    model = _model(lambda: optimizers.SGD(learning_rate=1e20), "float32")
    params = model.backend.trainable_weights()
    params[0][0, 0] = np.float32(np.finfo(np.float32).max * 0.9)
    grads = [np.zeros_like(p) for p in params]
    grads[0][0, 0] = -5e17  # lr·g = -5e37: the weight would pass the float's maximum
    bounds = update_box.RunningBounds(model.optimizer, params)
    before, steps = _state(model)
    assert not model.optimizer.apply_gradients_if_finite(params, grads, bounds, 5e17)
    assert bounds.measured is None  # the exact check ran, and the bounds will be measured again
    after, steps_after = _state(model)
    assert steps_after == steps
    for got, expected in zip(after, before):
        np.testing.assert_array_equal(got, expected)
    grads[0][0, 0] = 1e17  # towards zero: finite, applied after the exact check
    assert model.optimizer.apply_gradients_if_finite(params, grads, bounds, 1e17)
    assert params[0][0, 0] < np.finfo(np.float32).max * 0.9


def test_each_training_call_measures_again(monkeypatch):
    """Bounds live for one train_steps call: a weight written between calls (here by a
    callback, which makes each batch its own call) is read before the next proof."""
    model = _model(optimizers.Adam, "float32")
    x, y = _data()

    class Spoil(npnet.callbacks.Callback):
        """Adam's m of one weight beyond the box (L·ε/(8A), about 2e32 here), with a v that
        keeps the step finite (about 1e12)."""
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                model.optimizer.state["m"][0][0, 0] = 1e33
                model.optimizer.state["v"][0][0, 0] = 1e36

    counting = _Counting(monkeypatch)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[Spoil()])
    assert counting.answers == [True] * 3 + [False] * 6
    assert model.optimizer.iterations == 9 and np.isfinite(model.layers[0].kernel).all()


def test_largest_magnitude():
    assert update_box.largest_magnitude([]) == 0.0
    assert update_box.largest_magnitude([np.array([1.0, -3.0]), np.zeros((0,))]) == 3.0
    assert update_box.largest_magnitude([np.array([np.inf, 1.0])]) == np.inf
    assert np.isnan(update_box.largest_magnitude([np.array([1.0, np.nan]), np.array([5.0])]))
    assert np.isnan(update_box.largest_magnitude([np.array([5.0]), np.array([np.nan, -np.inf])]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_magnitude_bound_is_never_below_the_largest_magnitude(dtype):
    """The root of the BLAS sum of squares, widened, bounds every entry: whatever the sizes
    (one large entry among many, a lone entry, entries whose squares flush to 0) and signs."""
    rng = np.random.default_rng(3)
    info = np.finfo(dtype)
    cases = [[rng.standard_normal((784, 128)).astype(dtype), rng.standard_normal(128).astype(dtype)],
             [np.zeros((50, 3), dtype), np.array([-7.5], dtype)],
             [np.full(1000, np.sqrt(info.tiny) / 3, dtype)],  # every square below tiny
             [np.array([np.sqrt(info.tiny) * 0.9, -1e-30], dtype)],
             [rng.uniform(-1, 1, 5000).astype(dtype) * np.sqrt(info.max) / 200]]
    for trial in range(300):  # single entries near each power of two: fl(g²) rounding down
        cases.append([np.array([np.ldexp(1 + rng.random(), int(rng.integers(-60, 60)))], dtype)])
    for grads in cases:
        with np.errstate(under="ignore"):
            bound = update_box.magnitude_bound(grads)
        assert bound >= update_box.largest_magnitude(grads)
        assert bound <= 1.01 * np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads)) \
            + 2 * np.sqrt(info.tiny)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_magnitude_bound_falls_back_to_the_exact_largest(dtype):
    """Where the sum of squares overflows or its root passes sqrt(max), the exact largest
    magnitude is returned: a gradient whose squares are finite is never called too large."""
    info = np.finfo(dtype)
    edge = np.sqrt(info.max) * 0.99  # its square is finite; a thousand of them sum to inf
    grads = [np.full(1000, edge, dtype), np.array([-1.0], dtype)]
    with np.errstate(over="ignore"):
        assert update_box.magnitude_bound(grads) == update_box.largest_magnitude(grads)
        assert update_box.magnitude_bound(grads) <= np.sqrt(info.max)
    assert update_box.magnitude_bound([np.array([1.0, np.inf], dtype)]) == np.inf
    assert np.isnan(update_box.magnitude_bound([np.array([1.0], dtype), np.array([np.nan, -np.inf], dtype)]))
    assert update_box.magnitude_bound([]) == 0.0
    assert update_box.magnitude_bound([np.zeros((0, 4), dtype)]) >= 0.0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_centered_rmsprop_refuses_to_prove_a_denominator_below_tiny(dtype):
    """Centered RMSprop's denominator v' - ḡ'² + ε is computed before anything is written:
    where it falls below the smallest normal float the proof fails, the exact check refuses
    the step (here the root of a negative number) and nothing changes."""
    model = _model(lambda: optimizers.RMSprop(centered=True), dtype)
    x, y = _data()
    model.fit(x[:8], y[:8], batch_size=8, epochs=1, verbose=0)  # builds the optimizer's slots
    params = model.backend.trainable_weights()
    model.optimizer.state["average_gradient"][0][0, 0] = 10.0  # ḡ'² = 81 > v' = 0 for g = 0
    model.optimizer.state["velocity"][0][0, 0] = 0.0
    grads = [np.zeros_like(p) for p in params]
    bounds = update_box.RunningBounds(model.optimizer, params)
    before, steps = _state(model)
    assert bounds.proves(0.0, model.optimizer.learning_rate)  # the box itself is satisfied
    assert not model.optimizer._proven(params, grads, bounds, 0.0)
    assert not model.optimizer.apply_gradients_if_finite(params, grads, bounds, 0.0)
    after, steps_after = _state(model)
    assert steps_after == steps
    for got, expected in zip(after, before):
        np.testing.assert_array_equal(got, expected)
    model.optimizer.state["average_gradient"][0][0, 0] = 0.0  # now every denominator is ε or more
    assert model.optimizer.apply_gradients_if_finite(params, grads, bounds, 0.0)
    assert bounds.measured is not None  # proven: the bounds carried on, not measured again


def test_box_positions_are_the_kernels():
    from npnet.kernels import dense as K

    assert (update_box.GRADIENT, update_box.WEIGHT, update_box.SLOT, update_box.SQUARES, update_box.ALPHA,
            update_box.LARGEST, update_box.TINY) == (K.BOX_GRADIENT, K.BOX_WEIGHT, K.BOX_SLOT, K.BOX_SQUARES,
                                                     K.BOX_ALPHA, K.BOX_LARGEST, K.BOX_TINY)


def test_the_box_follows_the_learning_rate():
    """A schedule changes the learning rate step by step; a box made for a small rate must not
    vouch for a step at a huge one (SGD's gradient bound is L/(16·lr))."""
    model = _model(optimizers.SGD, "float32")
    bounds = update_box.RunningBounds(model.optimizer, model.backend.trainable_weights())
    gradient = 1e15
    assert bounds.proves(gradient, 0.01)
    assert not bounds.proves(gradient, 1e30)  # lr·g = 1e45: beyond float32
    assert bounds.proves(gradient, 0.01)


def _computed_denominators(velocity, average, epsilon):
    """``v - ḡ² + ε`` of the means, as ``functional.rmsprop_moments`` computes it."""
    denominator = np.subtract(velocity, average * average)
    denominator += epsilon
    return denominator


def _meets_the_margin(velocity, average, rho, epsilon, box_):
    """``update_box.centered_margin``'s condition for every element, in exact arithmetic."""
    from fractions import Fraction

    floor = Fraction(float(box_[update_box.CENTERED_FLOOR]))
    penalty = Fraction(float(box_[update_box.CENTERED_PENALTY]))
    quarter = Fraction(float(box_[update_box.LARGEST])) / 4
    rho, epsilon = Fraction(float(rho)), Fraction(float(epsilon))
    for v, a in zip(map(Fraction, velocity.ravel().tolist()), map(Fraction, average.ravel().tolist())):
        if not (rho * (v - a * a) + epsilon >= floor + penalty * (v + a * a) and a * a <= quarter):
            return False
    return True


def _largest_average_keeping(velocity, least, epsilon):
    """The largest ḡ >= 0 whose computed denominator with ``velocity`` is still at least ``least``
    (bisection on the bit patterns): the element with the least room for its v."""
    dtype = velocity.dtype
    denominator = lambda a: _computed_denominators(velocity, a, epsilon)  # noqa: E731
    low, high = np.zeros((), dtype), np.sqrt(velocity + epsilon) * dtype.type(1.01)
    bits = f"u{dtype.itemsize}"
    while high.view(bits) - low.view(bits) > 1:
        middle = (low.view(bits) + (high.view(bits) - low.view(bits)) // 2).astype(bits).view(dtype)
        low, high = (middle, high) if denominator(middle) >= least else (low, middle)
    return low


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rho", [0.9, 0.5, 0.999])
@pytest.mark.parametrize("epsilon", [1e-7, 1.0])
def test_the_centered_margin_test_vouches_only_for_means_that_keep_the_margin(epsilon, rho, dtype):
    """The NumPy backend skips saving a parameter's running means when two numbers (their
    largest v, the smallest denominator its step computed) say that every element keeps
    ``centered_margin``'s condition. The worst element (the largest v with the smallest
    denominator) at the test's edge keeps it, checked in exact arithmetic, with less than
    5% to spare (the test gives little away); and means made by real RMSprop steps, from
    gradients of many scales, varying or constant (whose v - ḡ² is rounding noise), keep it
    whenever the test says so."""
    optimizer = optimizers.RMSprop(centered=True, rho=rho, epsilon=epsilon)
    box_ = update_box.box(optimizer, np.dtype(dtype), 1e-3).astype(np.float64)
    rho_, epsilon_ = dtype(rho), dtype(epsilon)
    kept = update_box.centered_margin_test(box_, rho_, epsilon_, np.dtype(dtype))
    low, high = 0.0, 1.0  # bisection for the largest v the test accepts with denominators of ε
    while kept(high, epsilon_):
        high *= 2
    for _ in range(100):
        low, high = ((low + high) / 2, high) if kept((low + high) / 2, epsilon_) else (low, (low + high) / 2)
    velocity = np.array(low, dtype)
    if float(velocity) > low:  # rounded up past the edge
        velocity = np.nextafter(velocity, dtype(0))
    average = _largest_average_keeping(velocity, epsilon_, epsilon_)
    assert kept(velocity, _computed_denominators(velocity, average, epsilon_))
    assert _meets_the_margin(velocity, average, rho_, epsilon_, box_)
    room = (float(rho_) * (float(velocity) - float(average) ** 2) + float(epsilon_)) / (
        box_[update_box.CENTERED_FLOOR] + box_[update_box.CENTERED_PENALTY] * (float(velocity) + float(average) ** 2))
    assert 1 <= room < 1.05, room

    rng = np.random.default_rng(7)
    outcomes = set()
    for scale in np.geomspace(1e-6, 1e8, 15):
        for constant in (False, True):
            # a constant gradient from a long history of it: v = ḡ², their difference rounding noise
            velocity, average = (np.full(200, scale * scale, dtype), np.full(200, scale, dtype)) if constant \
                else (np.zeros(200, dtype), np.zeros(200, dtype))
            for _ in range(30):
                grad = (np.full(200, scale) if constant else rng.standard_normal(200) * scale).astype(dtype)
                F.rmsprop_moments(grad, velocity, rho, epsilon, average, out=(velocity, average, None))
            least = _computed_denominators(velocity, average, epsilon_).min()
            verdict = kept(velocity.max(), least)
            outcomes.add(verdict)
            if verdict:
                assert _meets_the_margin(velocity, average, rho_, epsilon_, box_), (scale, constant)
    assert outcomes == {True, False}


def test_centered_rmsprop_saves_only_the_running_means_at_risk(monkeypatch):
    """After a proven step the parameters whose means keep the margin are not saved before the
    next one; the numbers are those of the exact check (the family's test above), and a
    parameter whose means miss the margin is saved and put back when its step is refused."""
    model = _model(lambda: optimizers.RMSprop(centered=True), "float32")
    x, y = _data()
    params = model.backend.trainable_weights()
    bounds = update_box.RunningBounds(model.optimizer, params)
    saved = []
    copy_all = npnet.optimizers._copy_all
    monkeypatch.setattr(npnet.optimizers, "_copy_all",
                        lambda targets, sources: (saved.append(len(targets)), copy_all(targets, sources)))
    trainer, at_risk = model.backend, [4]  # nothing is known before the first step
    for step in range(6):
        assert trainer.train_batch(x[step * 8:step * 8 + 8], y[step * 8:step * 8 + 8], bounds=bounds)[2]
        at_risk.append(bounds.margins_kept(model.optimizer.state["velocity"]).count(False))
    assert saved == [2 * n for n in at_risk[:-1] if n]  # v and ḡ of each parameter at risk
    assert at_risk[-1] == 0
    velocities, averages = model.optimizer.state["velocity"], model.optimizer.state["average_gradient"]
    velocities[2][0, 0], averages[2][0, 0] = 0.0, 10.0  # ḡ'² = 81 > v': a denominator below zero
    bounds.denominators[2] = 0.0  # proves nothing: at risk, as after a training call's start (forget)
    before, steps = _state(model)
    grads = [np.zeros_like(p) for p in params]
    assert not model.optimizer._proven(params, grads, bounds, 0.0)
    assert saved[-2:] == [2, 2]  # v and ḡ of that parameter: saved, then put back
    after, steps_after = _state(model)
    assert steps_after == steps
    for got, expected in zip(after, before):
        np.testing.assert_array_equal(got, expected)


def test_a_write_between_training_calls_puts_the_running_means_at_risk_again():
    """A callback that spoils centered RMSprop's means between batches (each batch its own
    training call) makes the next step's denominator negative: that step is refused with
    nothing changed, because each call forgets which means kept their margin."""
    model = _model(lambda: optimizers.RMSprop(centered=True), "float32")
    x, y = _data()

    class Spoil(npnet.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                model.optimizer.state["velocity"][0][0, 0] = 0.0
                model.optimizer.state["average_gradient"][0][0, 0] = 10.0
                self.spoiled = _state(model)

    spoil = Spoil()
    with pytest.warns(RuntimeWarning, match="training stopped"):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[spoil])
    after, steps = _state(model)
    assert steps == spoil.spoiled[1] == 3
    for got, expected in zip(after, spoil.spoiled[0]):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("family, setting, value", [("adam", "epsilon", 1e-3), ("adam", "beta_1", 0.5),
                                                    ("rmsprop", "epsilon", 1e-40),  # below tiny: the box is off
                                                    ("rmsprop, centered", "rho", 1e-5)])  # no margin
def test_the_box_kept_from_call_to_call_follows_a_changed_hyperparameter(family, setting, value):
    """The bounds keep their box from one training call to the next only while the
    hyperparameters stay: changed between calls, the next proof uses the new box."""
    model = _model(FAMILIES[family], "float32")
    params = model.backend.trainable_weights()
    bounds = update_box.RunningBounds(model.optimizer, params)
    rate = float(model.optimizer.learning_rate)
    assert bounds.proves(1.0, rate)
    before = list(bounds.box)
    setattr(model.optimizer, setting, value)
    bounds.forget()  # what each training call does first
    proven = bounds.proves(1.0, rate)
    expected = update_box.box(model.optimizer, np.float32, rate).astype(np.float64).tolist()
    assert bounds.box == expected and expected != before
    assert proven == (expected[update_box.GRADIENT] >= 0)
    if family == "rmsprop, centered":  # the margin test is made again from the new ρ
        assert bounds.margin_test is None

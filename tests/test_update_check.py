"""The update is checked, not only the loss and the gradients (issue #16): a step whose update
would make any weight or optimizer slot inf or NaN is not applied, on both backends, for
every optimizer and both float types. The weights, every slot and ``iterations`` then stay
bit for bit as they were, and fit stops with its warning.

The hostile numbers all pass validation: they are derived from ``np.finfo`` of the weights'
type (a learning rate of the largest finite float, a weight at the largest float), so each
case is the same in float32 and float64.
"""

import itertools
import warnings

import numpy as np
import pytest

import npnet
from npnet import config, inspect, layers, optimizers, training, update_box, utils
from npnet import functional as F
from npnet.backends import numba_backend
from npnet.kernels import dense as K

OPTIMIZERS = {
    "sgd": lambda: optimizers.SGD(0.01),
    "sgd_momentum": lambda: optimizers.SGD(0.01, momentum=0.9),
    "sgd_nesterov": lambda: optimizers.SGD(0.01, momentum=0.9, nesterov=True),
    "rmsprop": lambda: optimizers.RMSprop(),
    "rmsprop_momentum": lambda: optimizers.RMSprop(momentum=0.5),
    "rmsprop_centered": lambda: optimizers.RMSprop(centered=True),
    "adam": lambda: optimizers.Adam(),
}
BACKENDS = ("numpy", "numba")
DTYPES = (np.float32, np.float64)


@pytest.fixture(autouse=True)
def floatx_of_the_test(request):
    """floatx is the test's ``dtype`` parameter (float32 without one): hyperparameters are
    checked in it, and the models are made in it."""
    callspec = getattr(request.node, "callspec", None)
    dtype = callspec.params.get("dtype", np.float32) if callspec else np.float32
    previous = config.floatx()
    config.set_floatx(np.dtype(dtype).name)
    yield
    config.set_floatx(previous)


def make_model(optimizer, backend, dtype):
    """A small softmax classifier of ``dtype`` weights, seeded, compiled for ``backend``."""
    assert config.floatx() == np.dtype(dtype).name
    utils.set_random_seed(0)
    model = npnet.Sequential([layers.Dense(8, activation="relu", input_shape=(6,)),
                              layers.Dense(3, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  backend=backend)
    return model


def clean_data(dtype, n=64, seed=1):
    rng = np.random.default_rng(seed)
    return rng.random((n, 6)).astype(dtype), rng.integers(0, 3, n)


def snapshot(model):
    """Copies of everything a step changes: weights, every optimizer slot, iterations."""
    state = model.optimizer.state
    slots = {} if state is None else {slot: [a.copy() for a in arrays] for slot, arrays in state.items()}
    return [w.copy() for w in model.get_weights()], slots, model.optimizer.iterations


def assert_unchanged(model, before):
    """Bit for bit (``array_equal`` on the bytes, so NaN and -0.0 count too)."""
    weights, slots, iterations = before
    assert model.optimizer.iterations == iterations
    for old, new in zip(weights, model.get_weights()):
        assert old.tobytes() == new.tobytes()
    state = model.optimizer.state or {}
    for slot, arrays in slots.items():
        assert [a.tobytes() for a in arrays] == [a.tobytes() for a in state[slot]], slot
    for slot, arrays in state.items():  # a slot made since (the numba backend builds at bind) is zeros
        if slot not in slots:
            assert all(not a.any() for a in arrays), slot


def fit_warnings(model, x, y, **kwargs):
    """(History, messages of fit's stop warning) of one fit without shuffling."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with np.errstate(over="ignore", invalid="ignore"):
            history = model.fit(x, y, verbose=0, shuffle=False, **kwargs)
    return history, [str(w.message) for w in caught if "training stopped" in str(w.message)]


def hostile_batch(dtype):
    """Inputs of 1e3 (identical rows): every gradient is finite and far below sqrt(max float),
    the loss is finite, but any learning rate near the largest float overflows the update."""
    return np.full((4, 6), 1e3, dtype=dtype), np.zeros(4, dtype=np.int64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_an_overflowing_update_after_good_steps_is_not_applied(name, backend, dtype):
    """Two good epochs, then the learning rate becomes the largest finite float of the dtype
    (a valid value): the next update overflows. fit warns, stops and returns; the weights, the
    slots and iterations are those of the last good step."""
    model = make_model(OPTIMIZERS[name](), backend, dtype)
    x, y = clean_data(dtype)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert model.optimizer.iterations == 8
    model.optimizer.learning_rate = float(np.finfo(dtype).max)
    hostile_x, hostile_y = hostile_batch(dtype)
    with np.errstate(over="ignore"):
        loss, _, grads = training.loss_and_gradients(model.layers, model.loss, hostile_x, hostile_y)
    assert np.isfinite(loss) and training.all_finite(grads)  # the premise: only the update is bad
    before = snapshot(model)
    history, warned = fit_warnings(model, hostile_x, hostile_y, epochs=3, batch_size=2)
    assert len(warned) == 1 and "Epoch 1, batch 0" in warned[0] and "update" in warned[0]
    assert model.stop_training and history.history == {}
    assert_unchanged(model, before)


def push_outwards(model, name, row, largest):
    """Put kernel row ``row`` at ±max float and make the optimizer move it outwards by more
    than half an ulp of max on its next step, even with a zero gradient: Adam through a
    learning rate of max/4 (its moments from the step before set the direction); the
    momentum optimizers through a momentum slot of max/2, a finite value a saved model may
    hold."""
    weights = model.get_weights()
    state = model.optimizer.state
    if name == "adam":
        model.optimizer.learning_rate = float(largest) / 4
        outwards = -np.sign(state["m"][0][row])  # the step is -α·m/(sqrt(v) + ε)
    else:
        outwards = np.ones_like(weights[0][row])
        # SGD adds its velocity, RMSprop subtracts its momentum buffer
        state["momentum"][0][row] = outwards * largest / 2 * (1 if name.startswith("sgd") else -1)
    weights[0][row] = (outwards * largest).astype(weights[0].dtype)
    model.set_weights(weights)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["sgd_momentum", "sgd_nesterov", "rmsprop_momentum", "adam"])
def test_a_weight_at_the_largest_float_is_not_pushed_over_it(name, backend, dtype):
    """A weight at ±max float whose input is 0 in this batch (so the loss and the gradients
    are finite, its own gradient 0) still moves, by its momentum or Adam's moments; moved
    outwards by more than half an ulp of max it would become inf. The step is refused."""
    model = make_model(OPTIMIZERS[name](), backend, dtype)
    x, y = clean_data(dtype, n=4)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)  # every slot now holds something
    row = 0
    push_outwards(model, name, row, np.finfo(dtype).max)
    x[:, row] = 0  # the weight meets only zeros: the forward pass is finite
    with np.errstate(over="ignore"):
        loss, _, grads = training.loss_and_gradients(model.layers, model.loss, x, y)
    assert np.isfinite(loss) and training.all_finite(grads) and not grads[0][row].any()  # the premise
    before = snapshot(model)
    _, warned = fit_warnings(model, x, y, epochs=1, batch_size=4)
    assert len(warned) == 1 and "Epoch 1, batch 0" in warned[0]
    assert_unchanged(model, before)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_an_adam_step_size_that_overflows_refuses_the_first_step(backend, dtype):
    """Adam(learning_rate=max/2, beta_1=0.999): every number is valid, but the bias-corrected
    step size lr·sqrt(1 - β2)/(1 - β1) is 16 times max, inf. The first step is refused: the
    weights stay the initial ones, iterations 0, and the slots were never written."""
    optimizer = optimizers.Adam(learning_rate=float(np.finfo(dtype).max) / 2, beta_1=0.999)
    model = make_model(optimizer, backend, dtype)
    x, y = clean_data(dtype, n=8)
    before = snapshot(model)
    _, warned = fit_warnings(model, x, y, epochs=2, batch_size=4)
    assert len(warned) == 1 and "Epoch 1, batch 0" in warned[0]
    assert_unchanged(model, before)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_apply_gradients_called_directly_raises_and_changes_nothing(name, dtype):
    """A user's own ``optimizer.apply_gradients`` with an update that would overflow raises
    FloatingPointError naming the step, and leaves the parameters, every slot and iterations
    as they were (Keras would write the infs); a good call afterwards works."""
    optimizer = OPTIMIZERS[name]()
    half = np.finfo(dtype).max / 2  # Adam's step is about the learning rate: from -max/2, -max is too far
    params = [np.linspace(-half, half, 6, dtype=dtype).reshape(2, 3), np.zeros(3, dtype=dtype)]
    good = [np.full((2, 3), 0.5, dtype=dtype), np.full(3, -0.5, dtype=dtype)]
    optimizer.apply_gradients(params, good)
    before = [p.copy() for p in params], {s: [a.copy() for a in arrays] for s, arrays in optimizer.state.items()}
    optimizer.learning_rate = float(np.finfo(dtype).max)
    big = [g * 4 for g in good]
    with pytest.raises(FloatingPointError, match=r"update of step 2 would make .* inf or NaN.*Nothing was changed"):
        optimizer.apply_gradients(params, big)
    assert optimizer.iterations == 1
    assert all(a.tobytes() == b.tobytes() for a, b in zip(before[0], params))
    for slot, arrays in optimizer.state.items():
        assert all(a.tobytes() == b.tobytes() for a, b in zip(before[1][slot], arrays)), slot
    optimizer.learning_rate = 0.01
    optimizer.apply_gradients(params, good)
    assert optimizer.iterations == 2


def test_a_refused_first_direct_step_leaves_the_optimizer_unbuilt():
    optimizer = optimizers.Adam(learning_rate=float(np.finfo(np.float32).max) / 2, beta_1=0.999)
    params = [np.ones(3, dtype=np.float32)]
    with pytest.raises(FloatingPointError):
        optimizer.apply_gradients(params, [np.ones(3, dtype=np.float32)])
    assert optimizer.state is None and optimizer.iterations == 0 and (params[0] == 1).all()


def test_a_nan_gradient_given_directly_is_refused_too():
    optimizer = optimizers.SGD(0.1)
    params = [np.ones(3, dtype=np.float32)]
    with pytest.raises(FloatingPointError):
        optimizer.apply_gradients(params, [np.array([0, np.nan, 0], dtype=np.float32)])
    assert (params[0] == 1).all() and optimizer.iterations == 0


def _first_nan_step_of_centered_rmsprop(grad, learning_rate, steps):
    """The premise, from the functional update alone: the first step at which centered
    RMSprop's new weights hold a NaN (None if none within ``steps``)."""
    param, velocity, average = np.zeros_like(grad), np.zeros_like(grad), np.zeros_like(grad)
    with np.errstate(invalid="ignore"):
        for step in range(1, steps + 1):
            F.rmsprop_update(param, grad, velocity, learning_rate, average_grad=average)
            if np.isnan(param).any():
                return step
    return None


def test_centered_rmsprop_whose_denominator_rounds_below_zero_is_refused():
    """Centered RMSprop divides by sqrt(v - ḡ² + ε): for a gradient that stays the same, v
    and ḡ² converge to the same number and their difference is rounding noise, larger than
    ε for gradients of 1e3, and negative half the time: sqrt gives NaN. That step is
    refused and the optimizer stays at the step before, bit for bit."""
    grad = np.linspace(900, 1100, 16, dtype=np.float32)
    nan_step = _first_nan_step_of_centered_rmsprop(grad, 1e-30, 2000)
    assert nan_step is not None  # the premise
    optimizer = optimizers.RMSprop(learning_rate=1e-30, centered=True)
    params = [np.zeros(16, dtype=np.float32)]
    for _ in range(nan_step - 1):
        optimizer.apply_gradients(params, [grad])
    before = params[0].copy(), {s: [a.copy() for a in arrays] for s, arrays in optimizer.state.items()}
    with pytest.raises(FloatingPointError):
        optimizer.apply_gradients(params, [grad])
    assert optimizer.iterations == nan_step - 1
    assert params[0].tobytes() == before[0].tobytes() and np.isfinite(params[0]).all()
    for slot, arrays in optimizer.state.items():
        assert [a.tobytes() for a in arrays] == [a.tobytes() for a in before[1][slot]], slot


def _centered_weight_drifting_out(backend, dtype):
    """A centered RMSprop model (momentum 0.9) whose kernel row 0 meets only zero inputs (its
    gradient is 0) and starts inside the box at 0.12·L, carried upwards by a momentum buffer of
    -0.1·L: the weight leaves the box (L/4) on its second step, as the update itself reports,
    and would pass L after about 37 steps. Returns (History, fit's stop warnings, model)."""
    largest = float(np.finfo(dtype).max)
    model = make_model(optimizers.RMSprop(0.001, momentum=0.9, centered=True), backend, dtype)
    x, y = clean_data(dtype, n=4)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, shuffle=False)  # every slot holds something
    weights = model.get_weights()
    weights[0][0] = dtype(0.12 * largest)
    model.set_weights(weights)
    model.optimizer.state["momentum"][0][0] = dtype(-0.1 * largest)  # RMSprop subtracts its buffer
    x, y = clean_data(dtype, n=4 * 60, seed=2)
    x[:, 0] = 0
    history, warned = fit_warnings(model, x, y, epochs=1, batch_size=4)
    return history, warned, model


@pytest.mark.parametrize("dtype", DTYPES)
def test_centered_rmsprop_notices_a_weight_that_its_update_moved_out_of_the_box(dtype):
    """The numba backend's proof for centered RMSprop reads the weights only when the last
    update did not report them inside the box. A weight that drifts out of it, step by step,
    and then over the largest float is refused at the same step on both backends, with every
    value finite and the weights of the last good step."""
    results = {backend: _centered_weight_drifting_out(backend, dtype) for backend in BACKENDS}
    (_, numpy_warned, reference), (_, numba_warned, fast) = results["numpy"], results["numba"]
    assert len(numpy_warned) == 1 and numpy_warned == numba_warned, (numpy_warned, numba_warned)
    assert "update" in numba_warned[0] and "Epoch 1, batch 0" not in numba_warned[0]
    assert reference.optimizer.iterations == fast.optimizer.iterations > 30
    largest = float(np.finfo(dtype).max)
    for ours, theirs in zip(fast.get_weights(), reference.get_weights()):
        assert np.isfinite(ours).all()
        np.testing.assert_allclose(ours, theirs, rtol=1e-5 if dtype == np.float32 else 1e-12)
    assert fast.get_weights()[0][0].min() > 0.9 * largest  # it went the whole way
    for arrays in fast.optimizer.state.values():
        assert all(np.isfinite(a).all() for a in arrays)


def test_inspect_step_reports_an_overflowing_update_as_not_applied():
    model = make_model(optimizers.SGD(float(np.finfo(np.float32).max)), "numpy", np.float32)
    before = snapshot(model)
    with np.errstate(over="ignore"):
        report = inspect.step(model, *hostile_batch(np.float32))
    assert not report.applied and "update is not finite" in str(report)
    assert_unchanged(model, before)


# ----------------------------------------------------------------------------- the numba proof


def _edges(limit, squares):
    """The values a slot can take at the box's edge (a running mean of squares is >= 0)."""
    return (0.0, limit) if squares else (-limit, 0.0, limit)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", ["default", "huge"])
@pytest.mark.parametrize("name", [n for n in OPTIMIZERS if n != "rmsprop_centered"])
def test_the_box_proves_what_the_kernels_skip(name, scale, dtype):
    """The numba kernels do not compute an update twice when the weights and slots are inside
    the optimizer's box and the gradients within its limit. From every corner of the box
    (each weight, slot and gradient at ± its limit or 0), at a late step (Adam's largest step
    size), one step gives finite numbers, on the NumPy arithmetic the kernels mirror; also
    with a learning rate of max/1e6, where the box is small but on."""
    largest = float(np.finfo(dtype).max)
    optimizer = OPTIMIZERS[name]()
    if scale == "huge":
        optimizer.learning_rate = largest / 1e6
    box = update_box.box(optimizer, np.dtype(dtype))
    assert box[K.BOX_WEIGHT] > 0, "the box is on"
    slots = optimizer.slots
    squares = {"v", "velocity"}
    corners = itertools.product((-1.0, 1.0), (-1.0, 1.0), *[
        _edges(box[K.BOX_SQUARES] if s in squares else box[K.BOX_SLOT], s in squares) for s in slots])
    for weight_sign, gradient_sign, *slot_values in corners:
        params = [np.full(3, weight_sign * box[K.BOX_WEIGHT], dtype=dtype)]
        grads = [np.full(3, gradient_sign * box[K.BOX_GRADIENT], dtype=dtype)]
        optimizer.state = None
        optimizer.build(params)
        optimizer.iterations = 10**6
        for slot, value in zip(slots, slot_values):
            optimizer.state[slot][0][...] = value
        assert optimizer.apply_gradients_if_finite(params, grads), (weight_sign, gradient_sign, slot_values)


def _slot_slack(dtype):
    """How far above their box limits Adam's slots and RMSprop's velocity may be between two
    measures in the kernels: (1 + 9u)^SLOTS_RECHECK (see ``npnet.kernels.dense.SLOTS_RECHECK``)."""
    unit_roundoff = float(np.finfo(dtype).eps) / 2
    return (1 + 9 * unit_roundoff) ** K.SLOTS_RECHECK


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", ["default", "huge"])
@pytest.mark.parametrize("beta_1", [0.9, 0.5, 0.999])
def test_adam_slots_leave_the_box_by_rounding_only(beta_1, scale, dtype):
    """The numba kernels compare only Adam's new weights with the box: from slots at their
    limits (and at every value between), SLOTS_RECHECK steps of gradients at ±their
    limit, in the kernel's own arithmetic, keep m and v within the slack the box allows.
    At the default rate the gradient's limit (sqrt(max)/2) puts v at its edge; at a huge
    rate the slot limit is the gradient's too, which puts m at its edge."""
    largest = float(np.finfo(dtype).max)
    optimizer = optimizers.Adam(learning_rate=largest / 1e6 if scale == "huge" else 0.001, beta_1=beta_1)
    box = update_box.box(optimizer, np.dtype(dtype))
    hyper = numba_backend._hyperparameters(optimizer, np.dtype(dtype))
    slot, squares, gradient = box[K.BOX_SLOT], box[K.BOX_SQUARES], box[K.BOX_GRADIENT]
    n = 64
    edges = np.linspace(-1, 1, n).astype(dtype)
    m, v = (edges * slot).astype(dtype), (np.abs(edges) * squares).astype(dtype)
    m[:2], v[:2] = [slot, -slot], squares
    rng = np.random.default_rng(0)
    for step in range(1, K.SLOTS_RECHECK + 1):
        param = np.zeros(n, dtype)  # the weights are compared by the kernel itself, each step
        signs = rng.choice(np.array([-1, 1], dtype), n)
        grad = (signs * gradient).astype(dtype)
        alpha = K.adam_step_size(dtype(step), hyper[0], hyper[1], hyper[2])
        K.adam_update(param, grad, m, v, alpha, hyper[4], hyper[5], hyper[3], box)
    slack = _slot_slack(dtype)
    assert np.max(np.abs(m)) <= slot * slack and np.max(v) <= squares * slack


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", ["default", "huge"])
def test_the_adam_box_proves_its_steps_with_slots_at_their_slack(scale, dtype):
    """As ``test_the_box_proves_what_the_kernels_skip`` for Adam, with m and v as far outside
    their limits as rounding can take them between two measures in the kernels."""
    largest = float(np.finfo(dtype).max)
    optimizer = optimizers.Adam(learning_rate=largest / 1e6 if scale == "huge" else 0.001)
    box = update_box.box(optimizer, np.dtype(dtype))
    slack = _slot_slack(dtype)
    for weight_sign, gradient_sign, m_sign in itertools.product((-1.0, 1.0), repeat=3):
        params = [np.full(3, weight_sign * box[K.BOX_WEIGHT], dtype=dtype)]
        grads = [np.full(3, gradient_sign * box[K.BOX_GRADIENT], dtype=dtype)]
        optimizer.state = None
        optimizer.build(params)
        optimizer.iterations = 10**6
        optimizer.state["m"][0][...] = m_sign * box[K.BOX_SLOT] * slack
        optimizer.state["v"][0][...] = 0.0  # the largest step: v only divides it
        assert optimizer.apply_gradients_if_finite(params, grads), (weight_sign, gradient_sign, m_sign)


RMSPROPS = ["rmsprop", "rmsprop_momentum", "rmsprop_centered"]


def _rmsprop(name, dtype, scale, rho=0.9):
    """RMSprop ``name`` of OPTIMIZERS at ``rho``, at a learning rate of max/1e6 for "huge"."""
    options = {"rmsprop": {}, "rmsprop_momentum": {"momentum": 0.5}, "rmsprop_centered": {"centered": True}}[name]
    learning_rate = float(np.finfo(dtype).max) / 1e6 if scale == "huge" else 0.001
    return optimizers.RMSprop(learning_rate=learning_rate, rho=rho, **options)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", ["default", "huge"])
@pytest.mark.parametrize("rho", [0.9, 0.5, 0.999])
@pytest.mark.parametrize("name", RMSPROPS)
def test_rmsprop_velocity_leaves_the_box_by_rounding_only(name, rho, scale, dtype):
    """The numba kernels do not compare RMSprop's velocity with the box either: from
    velocities at their limit (and at every value below), SLOTS_RECHECK steps of gradients
    at ±their limit, in the kernel's own arithmetic, keep it within the slack the box allows."""
    optimizer = _rmsprop(name, dtype, scale, rho)
    box = update_box.box(optimizer, np.dtype(dtype))
    hyper = numba_backend._hyperparameters(optimizer, np.dtype(dtype))
    squares, gradient = box[K.BOX_SQUARES], box[K.BOX_GRADIENT]
    assert gradient > 0, "the box is on"
    n = 64
    velocity = (np.linspace(0, 1, n) * squares).astype(dtype)
    velocity[:2] = squares
    buffer = np.zeros(n, dtype) if optimizer.momentum else None
    average = np.zeros(n, dtype) if optimizer.centered else None
    rng = np.random.default_rng(0)
    for _ in range(K.SLOTS_RECHECK):
        param = np.zeros(n, dtype)  # the weights are compared by the kernel itself, each step
        grad = (rng.choice(np.array([-1, 1], dtype), n) * gradient).astype(dtype)
        with np.errstate(all="ignore"):  # a centered step's own denominator is not this test's subject
            K.rmsprop_update(param, grad, velocity, buffer, average, hyper, box)
    assert 0 <= np.min(velocity) and np.max(velocity) <= squares * _slot_slack(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", ["default", "huge"])
@pytest.mark.parametrize("name", RMSPROPS)
def test_the_rmsprop_box_proves_its_steps_with_the_velocity_at_its_slack(name, scale, dtype):
    """As ``test_the_box_proves_what_the_kernels_skip`` for RMSprop (centered too), with the
    velocity as far above its limit as rounding can take it between two measures in the
    kernels. Centered RMSprop's running means then still meet the margin under which the
    box vouches for its denominator."""
    optimizer = _rmsprop(name, dtype, scale)
    box = update_box.box(optimizer, np.dtype(dtype))
    velocity = box[K.BOX_SQUARES] * _slot_slack(dtype)
    if optimizer.centered:
        factors = K.centered_margin_factors(dtype(optimizer.rho), dtype(optimizer.epsilon), box)
        assert K.centered_margin_met(dtype(velocity), dtype(0), *factors, box[K.BOX_SQUARES])
    momenta = (-1.0, 1.0) if optimizer.momentum else (0.0,)
    for weight_sign, gradient_sign, momentum in itertools.product((-1.0, 1.0), (-1.0, 1.0), momenta):
        params = [np.full(3, weight_sign * box[K.BOX_WEIGHT], dtype=dtype)]
        grads = [np.full(3, gradient_sign * box[K.BOX_GRADIENT], dtype=dtype)]
        optimizer.state = None
        optimizer.build(params)
        optimizer.state["velocity"][0][...] = velocity
        if optimizer.momentum:
            optimizer.state["momentum"][0][...] = momentum * box[K.BOX_SLOT]
        assert optimizer.apply_gradients_if_finite(params, grads), (weight_sign, gradient_sign, momentum)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_box_is_off_where_no_bound_holds(dtype):
    """An ε the kernels flush to zero, and numbers so large that a bound is not finite: every
    update is then checked exactly. Centered RMSprop (v - ḡ² + ε has no lower bound) has no
    box either, only the bounds of its own proof."""
    tiny = float(np.finfo(dtype).tiny)
    largest = float(np.finfo(dtype).max)
    for optimizer in (optimizers.Adam(epsilon=tiny / 2), optimizers.RMSprop(epsilon=tiny / 2),
                      optimizers.Adam(learning_rate=largest / 2, beta_1=0.999)):
        box = update_box.box(optimizer, np.dtype(dtype))
        assert box[K.BOX_WEIGHT] < 0 and box[K.BOX_GRADIENT] < 0 and box[K.BOX_LARGEST] == largest, optimizer
    box = update_box.box(optimizers.RMSprop(centered=True), np.dtype(dtype))
    assert box[K.BOX_GRADIENT] > 0 and box[K.BOX_WEIGHT] > 0
    assert box[K.BOX_SQUARES] == box.dtype.type(largest / 4)  # what its update reports on
    assert box[K.BOX_CENTERED_PENALTY] > 0 and box[K.BOX_CENTERED_FLOOR] > 0
    box = update_box.box(optimizers.RMSprop(rho=0.0, centered=True), np.dtype(dtype))
    assert box[K.BOX_CENTERED_FLOOR] == np.inf and box[K.BOX_WEIGHT] > 0  # too small a ρ for the margin
    factors = K.centered_margin_factors(dtype(0.0), dtype(1e-7), box)
    assert not K.centered_margin_met(dtype(0.0), dtype(0.0), *factors, box[K.BOX_SQUARES])  # never met
    assert box[K.BOX_TINY] == tiny


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_centered_rmsprop_proof_holds_where_it_says_and_only_there(momentum, dtype):
    """The kernels' read-only proof for centered RMSprop: a normal state is proven; a state
    whose denominator v - ḡ² + ε rounds below the smallest normal float is not (and its
    exact check then finds the NaN, as NumPy does); at the proof's own edges (denominator
    tiny, lr·|g| at its bound, weight and momentum at theirs) the NumPy step is finite."""
    optimizer = optimizers.RMSprop(centered=True, momentum=momentum)
    box = update_box.box(optimizer, np.dtype(dtype))
    hyper = numba_backend._hyperparameters(optimizer, np.dtype(dtype))
    n = 8
    param, grad = np.full(n, 0.5, dtype), np.linspace(-1, 1, n).astype(dtype)
    velocity, average = np.full(n, 0.3, dtype), np.full(n, 0.1, dtype)
    buffer = np.full(n, 0.01, dtype) if momentum else None
    square_limit = np.sqrt(np.finfo(dtype).max)
    assert K.rmsprop_centered_bounded(param, grad, velocity, buffer, average, hyper, box, square_limit, False)
    # v = ḡ² = g², for a gradient whose square's ulp is far above ε; then one element's
    # velocity 64 ulps below: v - ḡ² + ε is negative, far beyond the step's own rounding
    resolution = np.finfo(dtype).eps
    big = np.full(n, np.sqrt(1e3 * optimizer.epsilon / resolution), dtype)
    velocity_bad, average_bad = big * big, big.copy()
    velocity_bad[3] *= 1 - 64 * resolution
    assert not K.rmsprop_centered_bounded(param, big, velocity_bad, buffer, average_bad, hyper, box, square_limit,
                                          False)
    limit = box[K.BOX_LARGEST]
    numba_says = K.rmsprop_update_finite(param, big, velocity_bad, buffer, average_bad, hyper, limit)
    optimizer.build([param])
    optimizer.state["velocity"][0][...] = velocity_bad
    optimizer.state["average_gradient"][0][...] = average_bad
    if momentum:
        optimizer.state["momentum"][0][...] = buffer
    assert numba_says == optimizer.apply_gradients_if_finite([param], [big])  # the parameter it was built for


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_centered_rmsprop_proof_reads_weights_and_momentum_unless_told_they_are_inside(momentum, dtype):
    """``inside`` (the last update found the weights and momentum inside the box) spares the
    proof reading them; without it, a weight or momentum beyond its limit defeats the proof.
    A gradient whose square overflows is never proven, even at a learning rate so small that
    ``lr·|g|`` stays within its bound: the proof stands in for the gradients' own check."""
    optimizer = optimizers.RMSprop(learning_rate=1e-30, centered=True, momentum=momentum)
    box = update_box.box(optimizer, np.dtype(dtype))
    hyper = numba_backend._hyperparameters(optimizer, np.dtype(dtype))
    square_limit = dtype(np.sqrt(np.finfo(dtype).max))
    n = 6
    grad, velocity, average = np.full(n, 0.5, dtype), np.full(n, 0.3, dtype), np.full(n, 0.1, dtype)
    param = np.full(n, 0.5, dtype)
    buffer = np.full(n, 0.01, dtype) if momentum else None
    args = (velocity, buffer, average, hyper, box, square_limit)
    assert K.rmsprop_centered_bounded(param, grad, *args, False)
    param[2] = np.nextafter(box[K.BOX_WEIGHT], np.inf, dtype=dtype)
    assert not K.rmsprop_centered_bounded(param, grad, *args, False)
    assert K.rmsprop_centered_bounded(param, grad, *args, True)  # taken on the update's word
    param[2] = 0.5
    if momentum:
        buffer[4] = -np.nextafter(box[K.BOX_SLOT], np.inf, dtype=dtype)
        assert not K.rmsprop_centered_bounded(param, grad, *args, False)
        buffer[4] = 0.01
    huge = grad.copy()
    huge[1] = np.nextafter(square_limit, np.inf, dtype=dtype)
    assert abs(hyper[0] * huge[1]) <= box[K.BOX_ALPHA]
    assert not K.rmsprop_centered_bounded(param, huge, *args, True)
    assert K.too_large_to_square(huge, square_limit)


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_centered_rmsprop_update_reports_what_the_next_proof_skips(momentum):
    """The update reports whether the weights and momentum it wrote are inside the box: the
    next step's proof relies on it instead of reading them. Not the velocity: a proven step
    cannot take it out but by rounding (``test_rmsprop_velocity_leaves_the_box_by_rounding_only``)."""
    dtype = np.float32
    optimizer = optimizers.RMSprop(learning_rate=0.01, centered=True, momentum=momentum)
    box = update_box.box(optimizer, np.dtype(dtype))
    hyper = numba_backend._hyperparameters(optimizer, np.dtype(dtype))
    n = 5
    grad, velocity, average = np.full(n, 0.5, dtype), np.full(n, 0.3, dtype), np.full(n, 0.1, dtype)
    buffer = np.full(n, 0.01, dtype) if momentum else None
    assert K.rmsprop_update(np.full(n, 0.5, dtype), grad, velocity, buffer, average, hyper, box)
    param = np.full(n, 0.5, dtype)
    param[3] = -2 * box[K.BOX_WEIGHT]  # a step of about lr cannot bring it back (its ulp is far larger)
    assert not K.rmsprop_update(param, grad, velocity, buffer, average, hyper, box)
    param[3] = 0.5
    velocity[1] = 2 * box[K.BOX_SQUARES]
    assert K.rmsprop_update(param, grad, velocity, buffer, average, hyper, box)
    velocity[1] = 0.3
    if momentum:
        buffer[0] = 4 * box[K.BOX_SLOT]  # momentum 0.5 halves it: still twice the limit
        assert not K.rmsprop_update(param, grad, velocity, buffer, average, hyper, box)


def _centered_denominator(v, a, g, rho, one_minus_rho, epsilon):
    """Centered RMSprop's next denominator, in the order of operations of its update."""
    v = rho * v + one_minus_rho * (g * g)
    a = rho * a + one_minus_rho * g
    return v - a * a + epsilon


def _least_velocity_meeting_the_margin(a, rho, epsilon, box):
    """The smallest v (a float of a's type) with :func:`K.centered_margin_met` for ``a``."""
    factors = K.centered_margin_factors(rho, epsilon, box)

    def met(v):
        return K.centered_margin_met(v, a, *factors, box[K.BOX_SQUARES])
    low, high = a.dtype.type(0), a * a * 2 + epsilon * 2 + 1
    if met(low):
        return low
    assert met(high)
    for _ in range(200):  # bisection on the floats' bit patterns: v >= 0
        bits_low, bits_high = low.view(f"u{a.itemsize}"), high.view(f"u{a.itemsize}")
        if bits_high - bits_low <= 1:
            break
        middle = (bits_low + (bits_high - bits_low) // 2).astype(bits_low.dtype).view(a.dtype)
        low, high = (low, middle) if met(middle) else (middle, high)
    return high


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rho", [0.9, 0.5, 0.999, 0.01])
@pytest.mark.parametrize("epsilon", [1e-7, 1e-30, 1.0])
def test_the_centered_margin_keeps_the_next_denominator_above_tiny(epsilon, rho, dtype):
    """The box vouches for centered RMSprop's next denominator when the running means meet
    ``update_box.centered_margin``'s condition. At the condition's edge (the least v meeting
    it, for ḡ from tiny to sqrt(L/4)), with the next gradient the most harmful (equal to ḡ
    within a few ulps, which keeps the rounding deficit) and others up to the box's gradient
    limit, the denominator, computed as the update computes it, is at least tiny."""
    dtype = np.dtype(dtype).type
    optimizer = optimizers.RMSprop(centered=True, rho=rho, epsilon=epsilon)
    box = update_box.box(optimizer, np.dtype(dtype))
    hyper = numba_backend._hyperparameters(optimizer, np.dtype(dtype))
    rho_, one_minus_rho, epsilon_ = hyper[1], hyper[2], hyper[3]
    tiny, largest = np.finfo(dtype).tiny, np.finfo(dtype).max
    limit = box[K.BOX_GRADIENT]
    least = np.inf
    for magnitude in np.geomspace(float(np.sqrt(tiny)), float(np.sqrt(largest / 4)) * 0.99, 120):
        for sign in (1, -1):
            a = dtype(sign * magnitude)
            v = _least_velocity_meeting_the_margin(a, rho_, epsilon_, box)
            gradients = [a, np.nextafter(a, dtype(0)), np.nextafter(a, dtype(2 * a)), a * dtype(1.0001), a / 2,
                         2 * a, -a, dtype(0), dtype(min(limit, abs(a) * 4)), dtype(-limit), dtype(limit)]
            with np.errstate(over="ignore", invalid="ignore"):
                for g in gradients:
                    if not abs(g) <= limit:
                        continue
                    denominator = _centered_denominator(v, a, dtype(g), rho_, one_minus_rho, epsilon_)
                    assert denominator >= tiny, (a, v, g, denominator)
                    least = min(least, float(denominator) / float(epsilon_))
    assert least < 2  # the premise: some cases come near ε, where the margin matters


@pytest.mark.parametrize("dtype", DTYPES)
def test_running_means_whose_denominator_rounds_away_miss_the_margin(dtype):
    """A constant large gradient makes v = ḡ² (their difference rounding noise far above ε):
    such means miss the condition, so the box does not vouch and the exact check decides."""
    optimizer = optimizers.RMSprop(centered=True)
    box = update_box.box(optimizer, np.dtype(dtype))
    hyper = numba_backend._hyperparameters(optimizer, np.dtype(dtype))
    a = np.sqrt(1e3 * optimizer.epsilon / np.finfo(dtype).eps).astype(dtype)
    args = K.centered_margin_factors(hyper[1], hyper[3], box) + (box[K.BOX_SQUARES],)
    assert not K.centered_margin_met(a * a, a, *args)
    assert K.centered_margin_met(a * a * dtype(1.01), a, *args)  # a real variance: met
    assert K.centered_margin_met(dtype(0), dtype(0), *args)
    assert not K.centered_margin_met(dtype(np.finfo(dtype).max / 4), dtype(np.finfo(dtype).max / 4), *args)


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "rmsprop_centered"])
def test_a_normal_model_trains_inside_the_box(optimizer):
    """Keras's default Adam and RMSprop keep a fresh, trained model inside their box, so the kernels take
    the path without a second pass (the premise of the speed, not a measure of it); the measure made
    when a call starts and every SLOTS_RECHECK steps finds a slot outside."""
    model = make_model(OPTIMIZERS[optimizer](), "numba", np.float32)
    x, y = clean_data(np.float32)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    trainer = model._trainer
    net = trainer._bind_network()
    adam, sgd, rmsprop = trainer._bind_optimizer()
    assert K.state_in_box(net.kernels, net.biases, net.trainable, adam, sgd, rmsprop)
    model.layers[0].kernel[0, 0] = np.finfo(np.float32).max / 2  # outside: a weight above max/4
    assert not K.state_in_box(net.kernels, net.biases, net.trainable, adam, sgd, rmsprop)
    model.layers[0].kernel[0, 0] = 0.0
    assert K.state_in_box(net.kernels, net.biases, net.trainable, adam, sgd, rmsprop)
    squares = "v" if optimizer == "adam" else "velocity"
    model.optimizer.state[squares][1][0] = np.finfo(np.float32).max / 2  # a running mean of squares above max/4
    assert not K.state_in_box(net.kernels, net.biases, net.trainable, adam, sgd, rmsprop)


@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop"])
def test_a_schedule_that_reaches_a_learning_rate_of_zero_trains_the_same_on_both_backends(name):
    """A rate of 0 (CosineDecay's end) moves nothing and bounds nothing: the numba backend's
    proof of finiteness must not divide by it."""
    results = []
    for backend in ("numpy", "numba"):
        utils.set_random_seed(5)
        rng = np.random.default_rng(5)
        x, y = rng.random((24, 6)).astype("float32"), rng.integers(0, 3, 24)
        schedule = npnet.optimizers.schedules.CosineDecay(0.05, decay_steps=3, alpha=0.0)
        optimizer = {"sgd": optimizers.SGD, "adam": optimizers.Adam, "rmsprop": optimizers.RMSprop}[name](schedule)
        model = npnet.Sequential([layers.Input((6,)), layers.Dense(8, activation="relu"), layers.Dense(3)])
        model.compile(optimizer=optimizer, loss=npnet.losses.SparseCategoricalCrossentropy(from_logits=True),
                      backend=backend)
        model.fit(x, y, batch_size=4, epochs=2, verbose=0)  # 12 steps, 9 of them at rate 0
        assert model.optimizer.iterations == 12
        results.append(model.get_weights())
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop_centered"])
def test_the_kernels_box_follows_every_setting_it_depends_on(name):
    """The numba backend keeps its box from call to call while the settings it is made from
    stay the same, and makes it again when one changes (a new rate, ε, β1 or ρ)."""
    model = make_model(OPTIMIZERS[name](), "numba", np.float32)
    x, y = clean_data(np.float32)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    trainer, optimizer = model._trainer, model.optimizer
    changes = {"learning_rate": 1e30, "epsilon": 1e-3, "beta_1": 0.5, "rho": 0.0}  # ρ: below the margin's least
    for setting, value in changes.items():
        if not hasattr(optimizer, setting):
            continue
        before = _bound_box(trainer)
        np.testing.assert_array_equal(before, update_box.box(optimizer, np.float32))
        setattr(optimizer, setting, value)
        after = _bound_box(trainer)
        np.testing.assert_array_equal(after, update_box.box(optimizer, np.float32))
        assert not np.array_equal(before, after), setting


def _bound_box(trainer):
    trainer._bind_network()
    states = [state for state in trainer._bind_optimizer() if state is not None]
    return states[0].box.copy()

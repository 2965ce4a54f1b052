"""When an optimizer step provably keeps every weight and slot finite, without computing it twice.

npnet applies no update that would make a weight or an optimizer slot inf or NaN (see
:meth:`npnet.optimizers.Optimizer.apply_gradients`). Checking that by computing the update
and looking at every new value costs a pass over all of them, and undoing a bad step needs a
copy of them made before it. Both backends avoid that cost in the common case with a *box*:

* :func:`box` gives, for one optimizer and float type, bounds on the weights, the slots and
  the gradient such that a step from weights and slots inside them, with every gradient
  within its bound, leaves every new value finite (the reasoning is in its docstring);
* the numba kernels learn whether the new values are inside the box while they write them
  (not Adam's slots nor RMSprop's velocity: they cannot leave the box in a proven step but
  by rounding, see ``npnet.kernels.dense.SLOTS_RECHECK``);
* the NumPy backend keeps :class:`RunningBounds`: upper bounds of ``|weight|`` and of each
  slot, measured once at the start of a training call and then carried forward step by step
  from a bound of the largest gradient (:func:`magnitude_bound`, which the finiteness check of
  the gradients needs anyway).

A step that the box cannot vouch for is checked exactly, as before.
"""

import math

import numpy as np

#: Positions in a box: the largest gradient, weight, slot (Adam's m, SGD's velocity,
#: RMSprop's momentum), running mean of squares (Adam's v, RMSprop's velocity) and Adam step
#: size inside the box, the largest float of the weights' dtype (the limit of the exact check)
#: and its smallest normal float. The first five are -1 when the box is off: then no proof is
#: attempted and every update is checked exactly. (``npnet.kernels.dense`` reads the same
#: positions as its ``BOX_*``.)
GRADIENT, WEIGHT, SLOT, SQUARES, ALPHA, LARGEST, TINY = range(7)
#: Centered RMSprop's per-element condition on its running means (see :func:`centered_margin`),
#: the last two entries of every box.
CENTERED_FLOOR, CENTERED_PENALTY = 7, 8


def box(optimizer, dtype, learning_rate=None):
    """The bounds of the update check for ``optimizer`` with weights of ``dtype`` (at
    ``learning_rate``, by default the optimizer's at its current step): a step
    from weights and slots within them, with every gradient ``|g| <= box[GRADIENT]`` (and
    Adam's step size ``<= box[ALPHA]``), leaves every new value finite.

    Why, with L the largest float of ``dtype`` (every bound leaves at least a factor 2 for
    the rounding of the few operations of one step):

    * weights ``|w| <= L/4``, and each family's step moves a weight by at most L/4 (below);
      gradients ``|g| <= sqrt(L)/2``, so ``g² <= L/4``, and running means of squares
      (Adam's v, RMSprop's velocity) ``<= L/4``: their new value, between the old one and
      g², stays below L/2.
    * Adam: the denominator ``sqrt(v) + ε`` is at least ε, and α_t = lr·sqrt(1-β2^t)/(1-β1^t)
      <= lr/(1-β1) for every t, so its step is at most ``A·|m|/ε`` with A = 2·lr/(1-β1) (the
      step size computed is also compared with A); m moves between m and g, so
      ``|m|, |g| <= L·ε/(8A)`` bound the step by L/8.
    * SGD: velocity ``|v| <= L/8`` and ``lr·|g| <= L/16``: the new velocity is below 3L/16
      and Nesterov's step, the largest, below L/4.
    * RMSprop: the denominator ``v + ε`` is at least ε, so ``lr·|g| / sqrt(ε) <= L/16``
      bounds its step, and a momentum buffer ``<= L/8`` keeps the step below L/4.

    Off (the first five entries -1, every update then checked exactly) for ε below the
    smallest normal float (the kernels flush it to 0) and when a bound is not a positive
    finite number in ``dtype``. Centered RMSprop, whose ``v - ḡ² + ε`` can round to zero or
    below, bounds ``lr·|g|`` by ``sqrt(tiny)·L/16`` (its ALPHA entry) instead: a denominator
    of at least tiny then keeps its step below L/16. The kernels' box vouches for that
    denominator when the running means meet :func:`centered_margin`'s condition, element by
    element (its update reports whether they do); otherwise
    :func:`npnet.kernels.dense.rmsprop_centered_bounded` computes every denominator, and the
    NumPy backend (:meth:`npnet.optimizers.RMSprop._proven`) the smallest one.
    Then come L, tiny and :func:`centered_margin`'s two numbers."""
    dtype = np.dtype(dtype)
    info = np.finfo(dtype)
    largest, tiny = float(info.max), float(info.tiny)
    epsilon = float(dtype.type(getattr(optimizer, "epsilon", 1.0)))
    rate = optimizer.learning_rate if learning_rate is None else learning_rate
    with np.errstate(over="ignore", invalid="ignore"):
        rate = float(dtype.type(rate))
    gradient, slot, alpha = _family_limits(optimizer, dtype, rate, largest, epsilon)
    bounds = [gradient, largest / 4, slot, largest / 4, alpha]
    with np.errstate(over="ignore", invalid="ignore"):
        in_dtype = np.array(bounds, dtype=np.float64).astype(dtype)
    # a schedule's rate may be anything: NaN or inf (checked exactly) must not read as "no limit"
    if epsilon < tiny or not (math.isfinite(rate) and rate >= 0) \
            or not (np.all(np.isfinite(in_dtype)) and gradient > 0 and slot > 0):
        bounds = [-1.0] * 5
    elif getattr(optimizer, "centered", False):
        bounds = _centered_limits(rate, largest, tiny)
    return np.array(bounds + [largest, tiny] + centered_margin(optimizer, dtype), dtype=dtype)


def _centered_limits(learning_rate, largest, tiny):
    """The first five entries of centered RMSprop's box: its gradient limit keeps ``lr·|g|``
    within ``sqrt(tiny)·L/16`` (and ``g²`` within L/4)."""
    alpha = math.sqrt(tiny) * largest / 16
    return [min(math.sqrt(largest) / 2, _ratio(alpha, learning_rate)), largest / 4, largest / 8, largest / 4, alpha]


def centered_margin(optimizer, dtype):
    """``[floor, penalty]`` of the condition that centered RMSprop's running means v and ḡ
    meet, element by element, for the box to vouch for its next step's denominator:

        ρ·(v - ḡ²) + ε >= floor + penalty·(v + ḡ²),  ḡ² <= L/4

    (``[0, 0]``, unused, for the other optimizers; a floor of inf, which no means meet, when
    ρ < 1024u, too small for this reasoning). Why it suffices, with u the unit roundoff
    and ρ, ω = 1 - ρ as the update reads them (ρ + ω = 1 + δ, |δ| <= 2u): for the next gradient
    g, the exact ``v' - ḡ'²`` is ``ρ(v - ḡ²) + ρω(ḡ - g)² - δ(ρḡ² + ωg²)``, and the roundings
    of the update's ten operations (each within u, or tiny where the kernels flush to zero)
    take it down by at most ``5u·v + 9u·ḡ² + 14u·ω·g² + 16·tiny``. The g² term is covered by
    ``ρω(ḡ - g)²`` when |g| >= 2|ḡ| (for ρ >= 56u; the box asks 1024u) and is below 57u·ḡ²
    otherwise. So the denominator is at least ``ρ(v - ḡ²) + ε - 128u(v + ḡ²) - 16·tiny``,
    which the condition keeps above 16·tiny (the penalty 256u and the floor 4u·ε + 64·tiny
    leave as much again for the rounding of the condition itself): the step is finite as
    with :func:`npnet.kernels.dense.rmsprop_centered_bounded`'s denominator of tiny."""
    if not getattr(optimizer, "centered", False):
        return [0.0, 0.0]
    unit = float(np.finfo(dtype).eps) / 2
    if float(dtype.type(optimizer.rho)) < 1024 * unit:
        return [math.inf, 256 * unit]
    epsilon = float(dtype.type(optimizer.epsilon))
    return [4 * unit * epsilon + 64 * float(np.finfo(dtype).tiny), 256 * unit]


def centered_margin_test(box_, rho, epsilon, dtype):
    """A function ``kept(largest_velocity, smallest_denominator)``: True when every element
    of one parameter's centered RMSprop running means v, ḡ (of ``dtype``) meets
    :func:`centered_margin`'s condition, known only from two numbers: ``largest_velocity``
    V >= every v, and ``smallest_denominator`` D <= every denominator ``v - ḡ² + ε`` as
    :func:`npnet.functional.rmsprop_moments` computes it. ``box_`` is :func:`box`, ``rho``
    and ``epsilon`` as the update reads them.

    Why, with u the unit roundoff of ``dtype`` and each rounding within u relative or tiny
    absolute (flushed or gradual underflow): the denominator is ``fl(fl(v - fl(ḡ·ḡ)) + ε)``,
    so D > 0 implies ``v - ḡ² > -ε`` but for roundings, hence ``ḡ² <= A = (V + ε + 8·tiny)(1 + 5u)``;
    and undoing the three roundings, ``v - ḡ² + ε >= (D - 2·tiny)(1 - u) - u(V + 3A) - 8·tiny``.
    Then ``ρ(v - ḡ²) + ε = ρ(v - ḡ² + ε) + (1 - ρ)ε`` is at least the gain below, and
    ``floor + penalty·(v + ḡ²)`` at most the cost. Both are sums of numbers at least 0, so the
    float64 arithmetic here is within a few float64 units of each, which the factors
    ``1 ∓ 16·2⁻⁵³`` cover."""
    unit = float(np.finfo(dtype).eps) / 2
    floor, penalty, largest, tiny = (float(box_[i]) for i in (CENTERED_FLOOR, CENTERED_PENALTY, LARGEST, TINY))
    rho, epsilon, slack = float(rho), float(epsilon), 16 * 2.0 ** -53

    def kept(largest_velocity, smallest_denominator):
        velocity, least = float(largest_velocity), float(smallest_denominator)
        if not (least >= 2 * tiny and velocity >= 0):  # NaN fails too
            return False
        squares = (velocity + epsilon + 8 * tiny) * (1 + 5 * unit)  # A: the largest ḡ²
        gain = rho * (least - 2 * tiny) * (1 - unit) + (1 - rho) * epsilon
        cost = rho * (unit * (velocity + 3 * squares) + 8 * tiny) + floor + penalty * (velocity + squares)
        return squares <= largest / 4 and gain * (1 - slack) >= cost * (1 + slack)
    return kept


def _family_limits(optimizer, dtype, learning_rate, largest, epsilon):
    """``(gradient, slot, alpha)`` limits of :func:`box` for the optimizer's family, from
    its hyperparameters as the update reads them (cast to ``dtype``), in float64. A learning
    rate of 0 (a schedule may reach it) moves nothing, so it limits nothing."""
    from .optimizers import SGD, Adam

    gradient, slot, alpha = math.sqrt(largest) / 2, largest / 8, 0.0
    if isinstance(optimizer, Adam):
        beta_1 = float(dtype.type(optimizer.beta_1))
        alpha = 2 * learning_rate / (1 - beta_1) if beta_1 < 1 else math.inf
        slot = min(slot, _ratio(largest * epsilon, 8 * alpha))
        return min(gradient, slot), slot, alpha
    if isinstance(optimizer, SGD):
        return min(gradient, _ratio(largest, 16 * learning_rate)), slot, alpha
    return min(gradient, _ratio(largest * math.sqrt(epsilon), 16 * learning_rate)), slot, alpha


def _ratio(numerator, denominator):
    """``numerator / denominator`` for bounds, inf when the denominator is 0."""
    return numerator / denominator if denominator > 0 else math.inf


def largest_magnitude(arrays):
    """The largest ``|x|`` over all entries of ``arrays`` (0.0 for none), NaN if any is NaN."""
    largest = 0.0
    for a in arrays:
        if a.size:
            # max and min instead of max(abs(a)): no temporary array; NaN propagates through both
            high, low = float(np.max(a)), float(np.min(a))
            if high != high:
                return high
            largest = max(largest, high, -low)
    return largest


def magnitude_bound(arrays):
    """An upper bound of ``|x|`` over all entries of ``arrays`` (gradients, weights, slots),
    in one BLAS pass per array: inf or NaN when an entry is, and at most ``sqrt(max float)``
    only when every ``x²`` is finite, as :func:`npnet.training.squares_finite` asks of
    gradients.

    Why the root of the sum of squares bounds the largest entry even as computed: every term
    is at least 0, and a rounded sum (or fused multiply-add) of terms at least 0 is at least
    each of them, in any order of summation, since rounding is monotonic. So the computed sum
    is at least every ``fl(x²)``, which is at least ``x²·(1 - u)``, or 0 when the square
    falls below the smallest normal float (flushed). Hence the term ``sqrt(tiny)`` and the
    factor ``1 + 4ε``. When the sum overflows, or its bound passes ``sqrt(max float)``
    (where it would refuse a step whose squares are finite), the exact
    :func:`largest_magnitude` is taken instead: the bound only widens the proof, it never
    decides that a gradient is too large. (It is at most ``sqrt(size)`` times the largest
    entry; the box's limits are far above ``sqrt(max float)`` but for extreme
    hyperparameters, where a proof that fails is followed by the exact check.)"""
    if not arrays:
        return 0.0
    info = np.finfo(arrays[0].dtype)
    squares = 0.0  # the float64 sum of the per-array sums is at least each of them, too
    with np.errstate(over="ignore", invalid="ignore"):  # inf or NaN: handled below
        for a in arrays:
            flat = a.reshape(-1)
            squares += float(np.dot(flat, flat))
    bound = (math.sqrt(squares) + math.sqrt(float(info.tiny))) * (1.0 + 4.0 * float(info.eps))
    if not bound <= math.sqrt(float(info.max)):
        return largest_magnitude(arrays)
    return bound


class RunningBounds:
    """Upper bounds of ``|weight|`` and of each optimizer slot over consecutive steps that
    nothing else writes to (one training call of the NumPy backend), so that
    :meth:`proves` can say from the box alone that the next step keeps every value finite.

    They are measured exactly when first needed (one read of every array) and then carried
    forward by :meth:`advance` from a bound of each step's largest gradient: a running mean
    (Adam's m and v, RMSprop's velocity) stays between its old value and the new gradient (or its
    square), and each family's step is bounded as its update is written (Adam's step size
    ``lr·sqrt(1-β2^t)/(1-β1^t)`` by ``lr/(1-β1)``). Every bound is widened by a few units in
    the last place per step for rounding, so it stays an upper bound; when the bounds leave
    the box they are measured again. Centered RMSprop's denominator is not bounded by the
    box: its optimizer computes the step's denominators before taking the step and passes
    their minimum to :meth:`advance` (:meth:`npnet.optimizers.RMSprop._proven`), and
    :meth:`margins_kept` tells which parameters' running means need no saving before a step.
    The box follows the learning rate (a schedule's changes each step)."""

    _ROUNDING = 4  # units in the last place allowed per operation, per bound

    def __init__(self, optimizer, params):
        from .optimizers import SGD, Adam

        # plain views: reading a Variable through NumPy's functions costs more than the read
        self.optimizer, self.params = optimizer, [np.asarray(p) for p in params]
        self.family = ("adam" if isinstance(optimizer, Adam) else "sgd" if isinstance(optimizer, SGD)
                       else "centered" if optimizer.centered else "rmsprop")
        self.dtype = self.params[0].dtype if self.params else np.dtype(np.float64)
        self.widen = 1.0 + self._ROUNDING * float(np.finfo(self.dtype).eps)
        self.box, self.box_rate, self.limits, self.hyper = None, None, None, None
        self.forget()

    def forget(self):
        """Something else may have written the arrays (a step checked exactly, a callback
        between training calls) or changed a hyperparameter: read them again before the
        next proof."""
        self.measured = None  # {"weight": ..., "slot": ..., "squares": ...} once measured
        # centered RMSprop: per parameter, the smallest denominator of the last proven step
        self.denominators = None
        optimizer = self.optimizer
        hyper = {name: self._cast(getattr(optimizer, name))
                 for name in ("beta_1", "epsilon", "momentum", "rho") if hasattr(optimizer, name)}
        if hyper != self.hyper:  # the box follows these (and the rate, see proves)
            self.box_rate, self.margin_test, self.hyper = None, None, hyper

    def _cast(self, value):
        """A hyperparameter as the update reads it: cast to the weights' float type."""
        return float(self.dtype.type(value))

    def proves(self, largest_gradient, learning_rate):
        """True when a step at ``learning_rate`` with gradients of at most ``largest_gradient``
        in magnitude provably keeps every weight and slot finite."""
        if learning_rate != self.box_rate:
            self.box = self._limits(learning_rate)
            self.box_rate = learning_rate
            self.limits = {"weight": self.box[WEIGHT], "squares": self.box[SQUARES], "slot": self.box[SLOT]}
        box_ = self.box
        if box_[GRADIENT] < 0 or not largest_gradient <= box_[GRADIENT] \
                or not self._adam_step_size(learning_rate) <= box_[ALPHA]:
            return False
        if self.measured is not None and self._inside():
            return True
        self.measured = self._measure()
        return self._inside()

    def _limits(self, learning_rate):
        """:func:`box` as Python floats (float64). Centered RMSprop's denominator is left to
        the caller (see :meth:`npnet.optimizers.RMSprop._proven`)."""
        return box(self.optimizer, self.dtype, learning_rate).astype(np.float64).tolist()

    def _adam_step_size(self, learning_rate):
        """An upper bound of Adam's step size at every step (0 for the other families)."""
        if self.family != "adam":
            return 0.0
        return self._cast(learning_rate) / (1.0 - self.hyper["beta_1"]) * self.widen ** 2

    def _inside(self):
        return all(value <= self.limits[kind] for kind, value in self.measured.items())

    def _measure(self):
        """Bounds of every weight and slot, by reading each array once (:func:`magnitude_bound`)."""
        return by_kind(self.params, self.optimizer.state, magnitude_bound)

    def advance(self, largest_gradient, learning_rate, smallest_denominator=None):
        """Carry the bounds over one step applied after :meth:`proves` said True (centered
        RMSprop's with the smallest denominator of that step)."""
        bound, g, widen, hyper = self.measured, largest_gradient, self.widen, self.hyper
        lr = self._cast(learning_rate)
        if self.family == "adam":  # |step| = α·|m| / (sqrt(v) + ε) <= α·|m| / ε
            bound["slot"] = max(bound.get("slot", 0.0), g) * widen
            bound["squares"] = max(bound.get("squares", 0.0), g * g) * widen
            move = self._adam_step_size(learning_rate) * bound["slot"] / hyper["epsilon"] * widen ** 2
        elif self.family == "sgd":  # |v'| <= μ|v| + lr·|g|; the step is v' (Nesterov: μ|v'| + lr·|g|)
            move = lr * g * widen
            if "slot" in bound:
                bound["slot"] = (hyper["momentum"] * bound["slot"] + move) * widen
                move = (hyper["momentum"] * bound["slot"] + move) * widen if self.optimizer.nesterov else bound["slot"]
        else:  # RMSprop: |increment| = lr·|g| / sqrt(denominator), which is at least ε (not
            # centered) or the smallest denominator the caller computed (centered)
            bound["squares"] = max(bound.get("squares", 0.0), g * g) * widen
            least = hyper["epsilon"] if smallest_denominator is None else smallest_denominator
            move = lr * g / math.sqrt(least) * widen ** 3
            slot = bound.get("slot", 0.0)
            if hyper["momentum"] > 0:  # |m'| <= μ|m| + |increment|, and the step is m'
                move = (hyper["momentum"] * slot + move) * widen
            if self.family == "centered":  # ḡ' lies between ḡ and g; ḡ and m share the slot bound
                bound["slot"] = max(slot, g, move if hyper["momentum"] > 0 else 0.0) * widen
            elif "slot" in bound:
                bound["slot"] = move
        bound["weight"] = (bound["weight"] + move) * widen

    def margins_kept(self, velocities):
        """Centered RMSprop: for each parameter, whether its running means keep
        :func:`centered_margin`'s condition, from the largest of its ``velocities`` now and
        the smallest denominator its last proven step computed (:meth:`note_denominators`).
        The next step's denominators are then at least tiny for any gradient in the box, so
        its optimizer need not save those means first (:meth:`npnet.optimizers.RMSprop._proven`).
        All False until a step was proven since the arrays were last read."""
        if self.denominators is None:
            return [False] * len(velocities)
        if self.margin_test is None:  # the margin's entries of the box do not follow the rate
            self.margin_test = centered_margin_test(self.box, self.hyper["rho"], self.hyper["epsilon"], self.dtype)
        return [self.margin_test(velocity.max() if velocity.size else 0.0, least)
                for velocity, least in zip(velocities, self.denominators)]

    def note_denominators(self, smallest):
        """After a proven centered RMSprop step: the smallest denominator of each parameter's."""
        self.denominators = list(smallest)


def by_kind(params, state, magnitude):
    """``{"weight": ..., "slot": ..., "squares": ...}``: ``magnitude(arrays)`` of the
    parameters and of each kind of optimizer slot in ``state`` (None: no slots), the kinds
    :class:`RunningBounds` carries."""
    found = {"weight": magnitude(params)}
    for name, arrays in (state or {}).items():
        kind = _SLOT_KINDS[name]
        found[kind] = max(found.get(kind, 0.0), magnitude(arrays))
    return found


#: Which bound each optimizer slot belongs to.
_SLOT_KINDS = {"m": "slot", "v": "squares", "momentum": "slot", "velocity": "squares",
               "average_gradient": "slot"}

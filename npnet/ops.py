"""``from npnet import ops`` (Keras 3's ``from keras import ops``) fails here with the advice
that ``npnet.ops`` gives: npnet computes with NumPy and has no ops namespace of its own."""

from . import _TENSORFLOW_NAMES

raise ImportError(f"npnet has no module 'ops': {_TENSORFLOW_NAMES['ops']}", name="npnet.ops")

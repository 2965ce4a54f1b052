"""``from npnet.datasets import cifar10`` (as ``from keras.datasets import cifar10``): not shipped; the
ImportError says what to do instead."""

from . import refuse_import

refuse_import(__name__)

"""``from npnet.datasets import cifar100`` (as ``from keras.datasets import cifar100``): not shipped; the
ImportError says what to do instead."""

from . import refuse_import

refuse_import(__name__)

"""``from npnet.datasets import mnist`` (as ``from keras.datasets import mnist``): not shipped; the
ImportError says what to do instead."""

from . import refuse_import

refuse_import(__name__)

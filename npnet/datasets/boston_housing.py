"""``from npnet.datasets import boston_housing`` (as ``from keras.datasets import boston_housing``): not shipped; the
ImportError says what to do instead."""

from . import refuse_import

refuse_import(__name__)

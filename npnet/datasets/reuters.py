"""``from npnet.datasets import reuters`` (as ``from keras.datasets import reuters``): not shipped; the
ImportError says what to do instead."""

from . import refuse_import

refuse_import(__name__)

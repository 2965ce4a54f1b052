"""``from npnet.datasets import imdb`` (as ``from keras.datasets import imdb``): not shipped; the
ImportError says what to do instead."""

from . import refuse_import

refuse_import(__name__)

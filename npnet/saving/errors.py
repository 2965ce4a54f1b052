"""One error type for every file npnet refuses, naming the file and the problem.

Loading walks JSON, zip archives and HDF5 files that may have been written by anyone. Whatever
goes wrong inside (a malformed entry, a recursion too deep, a number that overflows, an HDF5
error), the caller sees one :class:`ModelFileError` that says which file and why, and the
model it might have replaced is left as it was.
"""

import contextlib
import errno
import json
import os

#: Digits an integer in a model description may have (int64 needs 19): longer ones are refused
#: by name, before Python's own limit on converting long digit strings speaks of sys settings.
MAX_JSON_INTEGER_DIGITS = 40


class ModelFileError(ValueError):
    """A model or weights file that cannot be loaded (a ``ValueError``, as Keras raises).

    ``path`` is the file, ``problem`` what is wrong with it.
    """

    def __init__(self, path, problem):
        self.path = os.fsdecode(path)
        self.problem = problem
        super().__init__(f"{self.path!r} cannot be loaded: {problem}")


class FileTooLarge(ModelFileError):
    """A member, dataset or declared size beyond npnet's bounds (see :mod:`npnet.saving.limits`)."""


@contextlib.contextmanager
def reading(path):
    """Turn any failure while reading ``path`` into a :class:`ModelFileError` naming it.

    ``FileNotFoundError`` passes through unchanged (Keras raises it too), as do
    ``KeyboardInterrupt`` and ``MemoryError`` (not problems of the file).
    """
    try:
        yield
    except (ModelFileError, FileNotFoundError, KeyboardInterrupt, MemoryError):
        raise
    except Exception as error:  # noqa: BLE001 - one error type for the caller, whatever failed
        raise ModelFileError(path, problem(error)) from None


@contextlib.contextmanager
def describing(what):
    """:func:`reading` for a description that is not a file (a JSON string, a config dict):
    any failure becomes a ``ValueError`` that starts with ``what`` and says the same problem
    a file would get."""
    try:
        yield
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as error:  # noqa: BLE001 - one error type for the caller, whatever failed
        raise ValueError(f"{what}: {problem(error)}") from None


def problem(error):
    """What an exception raised while reading a model description says is wrong with it."""
    if isinstance(error, ModelFileError):
        return error.problem
    if isinstance(error, (KeyError, IndexError)):
        return f"missing or malformed entry {error}"
    if isinstance(error, RecursionError):
        return "nested too deeply to be a model description"
    return _describe(error)


def _describe(error):
    message = str(error) or type(error).__name__
    if isinstance(error, ValueError):
        return message
    return f"the file is corrupted ({type(error).__name__}: {message})"


def parse_json(text, what):
    """``json.loads(text)``, refusing integers longer than :data:`MAX_JSON_INTEGER_DIGITS`
    digits with a ValueError naming ``what``."""
    def integer(digits):
        if len(digits.lstrip("-")) > MAX_JSON_INTEGER_DIGITS:
            raise ValueError(f"{what} holds an integer of {len(digits.lstrip('-')):,} digits; expected "
                             f"integers of at most {MAX_JSON_INTEGER_DIGITS} digits")
        return int(digits)
    return json.loads(text, parse_int=integer)


def require_file(path, what="model"):
    """Raise unless ``path`` is a file to read: ``FileNotFoundError`` when nothing is there
    (as Keras), and an ``OSError`` saying so for a folder, a FIFO or device (which reading
    could block on or never finish), or a symbolic-link loop."""
    from ..utils import special_file_kind

    if os.path.isfile(path):
        return
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, f"{path!r} is a folder; expected a {what} file")
    if os.path.exists(path):
        raise OSError(errno.EINVAL, f"{path!r} is {special_file_kind(os.stat(path).st_mode)}; "
                                    f"expected a regular {what} file")
    if os.path.islink(path) and os.path.islink(os.path.realpath(path)):  # realpath stops inside a loop
        raise OSError(errno.ELOOP, f"{path!r} is a loop of symbolic links; expected a {what} file")
    raise FileNotFoundError(errno.ENOENT, f"No {what} file at {path!r}")

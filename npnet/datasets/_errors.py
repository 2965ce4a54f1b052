"""Exceptions and warnings raised by the dataset loaders."""


class DataWarning(UserWarning):
    """A data file was found but is unusable (truncated, corrupted, wrong content).

    The loader warns, skips that location and tries the next one.
    """


class DatasetNotFoundError(FileNotFoundError):
    """No location held a complete, valid copy of a data set and downloading failed.

    The message lists every location tried and why it failed, followed by the
    ways to provide the data. ``attempts`` holds the same list as
    ``(location description, reason)`` pairs.
    """

    def __init__(self, message, attempts=()):
        super().__init__(message)
        self.attempts = list(attempts)

    def __str__(self):
        # FileNotFoundError's own __str__ would print "[Errno None] ..." for
        # some argument patterns; the message is all we want.
        return self.args[0]


class BadFileError(ValueError):
    """Internal: a data file failed verification; ``str(error)`` is the reason."""


# Shown in tracebacks and warnings as npnet.datasets.X, where users import them from.
DataWarning.__module__ = "npnet.datasets"
DatasetNotFoundError.__module__ = "npnet.datasets"

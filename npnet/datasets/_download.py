"""Download one file into a cache directory with pooch.

pooch streams the response into a temporary file in the target directory,
checks ``known_hash`` and only then renames the file into place, so an
interrupted or rejected download never leaves a partial file under the final
name (and pooch removes its temporary file). We add a bounded timeout, no
retries (an offline machine fails in milliseconds, not minutes), a progress bar
only when stderr is a terminal, and one exception type with a short reason.
"""

import contextlib
import importlib.util
import logging
import sys
from pathlib import Path

#: Seconds to wait for the connection and for each read (requests' timeout).
TIMEOUT = 30


class DownloadError(OSError):
    """A download failed; ``str(error)`` is a one-line reason."""


def _stderr_is_terminal():
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def _quiet_pooch_logger(pooch):
    # pooch logs "Downloading data from ..." (and, without a known hash, advice
    # to pin the SHA-256) at INFO level on stderr; we print our own message.
    logger = pooch.get_logger()
    previous = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _describe(error):
    """A short reason for a failed request: the innermost cause, not the wrapper."""
    reason = error
    # requests.ConnectionError wraps urllib3's MaxRetryError, which wraps the cause.
    if reason.args and hasattr(reason.args[0], "reason"):
        reason = reason.args[0].reason
    return f"{type(error).__name__}: {reason}"


def download(url, directory, fname, *, known_hash=None, timeout=None):
    """Download ``url`` to ``directory/fname`` and return that path.

    ``known_hash`` is checked by pooch on the downloaded bytes (``"md5:..."``
    or a SHA-256); ``None`` skips that check. If ``directory/fname`` exists and
    matches ``known_hash`` (or ``known_hash`` is None) pooch does not download
    again, so callers remove stale files first. ``timeout`` defaults to
    :data:`TIMEOUT`, read at call time. Raises :class:`DownloadError`.
    """
    if timeout is None:
        timeout = TIMEOUT
    # Imported here, not at the top, to keep ``import npnet`` fast (~20 ms).
    import pooch
    import requests

    show_progress = _stderr_is_terminal()
    has_tqdm = importlib.util.find_spec("tqdm") is not None
    downloader = pooch.HTTPDownloader(
        progressbar=show_progress and has_tqdm,
        timeout=timeout,
    )
    if show_progress:
        print(f"Downloading {url}", file=sys.stderr, flush=True)
    try:
        with _quiet_pooch_logger(pooch):
            local = pooch.retrieve(
                url,
                known_hash=known_hash,
                fname=fname,
                path=directory,
                downloader=downloader,
            )
    except requests.exceptions.RequestException as error:
        raise DownloadError(_describe(error)) from error
    except ValueError as error:
        # pooch's hash mismatch: it has already deleted the download.
        raise DownloadError(str(error)) from error
    except OSError as error:
        # Typically: cannot create or write the cache directory.
        raise DownloadError(f"{type(error).__name__}: {error}") from error
    return Path(local)

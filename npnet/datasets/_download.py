"""Download one file into a cache directory with pooch, within limits.

pooch streams the response into a temporary file in the target directory,
checks ``known_hash`` and only then renames the file into place, so an
interrupted or rejected download never leaves a partial file under the final
name (and pooch removes its temporary file). The bytes are fetched by our own
pooch downloader, :class:`BoundedDownloader`, which adds what pooch's does not
have: an overall deadline (a mirror that trickles a byte at a time would pass
every per-read timeout forever) and a maximum size (a server that never stops
sending). We also use a bounded per-read timeout, no retries (an offline
machine fails in milliseconds, not minutes), a progress bar only when stderr is
a terminal, and one exception type with a short reason.
"""

import contextlib
import importlib.util
import logging
import sys
import time
from pathlib import Path

#: Seconds to wait for the connection and for each read (requests' timeout).
TIMEOUT = 30

#: Seconds all the files of one ``load_data()`` download may take together
#: (Fashion-MNIST is about 30 MB: 20 minutes is ~25 kB/s).
DEADLINE = 20 * 60

#: The clock the deadline is measured on; tests replace it with a fake one.
clock = time.monotonic

#: Bytes asked for per read; a read returns what one ``recv`` gave, so the
#: deadline is checked at least once per arriving packet.
CHUNK_SIZE = 64 * 1024


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


class BoundedDownloader:
    """A pooch downloader (called as ``downloader(url, output_file, pooch)``) with limits.

    ``deadline`` is a time on :data:`clock` after which the download is abandoned,
    checked before every read; ``max_bytes`` caps the body. Both raise
    :class:`DownloadError`. ``timeout`` bounds the connection and each read.
    """

    def __init__(self, *, timeout, deadline=None, max_bytes=None, progressbar=False):
        self.timeout = timeout
        self.deadline = deadline
        self.max_bytes = max_bytes
        self.progressbar = progressbar

    def __call__(self, url, output_file, pooch=None):
        import requests

        timeout = self.timeout
        if self.deadline is not None:
            timeout = max(0.001, min(timeout, self.deadline - clock()))
        with requests.get(url, stream=True, timeout=timeout) as response:
            response.raise_for_status()
            total = int(response.headers.get("content-length", 0)) or None
            if self.max_bytes is not None and total is not None and total > self.max_bytes:
                raise DownloadError(
                    f"{url} is {total:,} bytes, expected at most {self.max_bytes:,}"
                )
            with open(output_file, "wb") as out, self._progress(total) as progress:
                self._copy(url, response.raw, out, progress)

    def _progress(self, total):
        if self.progressbar and importlib.util.find_spec("tqdm") is not None:
            import tqdm

            return tqdm.tqdm(total=total, unit="B", unit_scale=True, file=sys.stderr)
        return contextlib.nullcontext()

    def _copy(self, url, raw, out, progress):
        import urllib3

        received = 0
        while True:
            if self.deadline is not None and clock() > self.deadline:
                raise DownloadError(
                    f"gave up on {url}: the download deadline ({DEADLINE:g} s for all files) "
                    f"passed after {received:,} bytes; the server is too slow"
                )
            try:
                chunk = raw.read1(CHUNK_SIZE, decode_content=True)
            except urllib3.exceptions.HTTPError as error:
                raise DownloadError(f"{type(error).__name__}: {error}") from error
            if not chunk:
                return
            received += len(chunk)
            if self.max_bytes is not None and received > self.max_bytes:
                raise DownloadError(
                    f"{url} sent more than the {self.max_bytes:,} bytes expected; gave up"
                )
            out.write(chunk)
            if progress is not None:
                progress.update(len(chunk))


def download(url, directory, fname, *, known_hash=None, timeout=None, deadline=None,
             max_bytes=None):
    """Download ``url`` to ``directory/fname`` and return that path.

    ``known_hash`` is checked by pooch on the downloaded bytes (``"md5:..."``
    or a SHA-256); ``None`` skips that check. If ``directory/fname`` exists and
    matches ``known_hash`` (or ``known_hash`` is None) pooch does not download
    again, so callers download to a fresh name. ``timeout`` defaults to
    :data:`TIMEOUT`, read at call time; ``deadline`` (a time on :data:`clock`)
    and ``max_bytes`` are the limits of :class:`BoundedDownloader`.
    Raises :class:`DownloadError`.
    """
    if timeout is None:
        timeout = TIMEOUT
    # Imported here, not at the top, to keep ``import npnet`` fast.
    import pooch
    import requests

    show_progress = _stderr_is_terminal()
    downloader = BoundedDownloader(timeout=timeout, deadline=deadline, max_bytes=max_bytes,
                                   progressbar=show_progress)
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
    except DownloadError:
        raise
    except requests.exceptions.RequestException as error:
        raise DownloadError(_describe(error)) from error
    except ValueError as error:
        # pooch's hash mismatch: it has already deleted the download.
        raise DownloadError(str(error)) from error
    except OSError as error:
        # Typically: cannot create or write the cache directory.
        raise DownloadError(f"{type(error).__name__}: {error}") from error
    return Path(local)

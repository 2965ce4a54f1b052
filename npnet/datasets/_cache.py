"""npnet's cache directory and the index of files already verified.

Cache root: ``$NPNET_CACHE_DIR`` if set, else ``platformdirs.user_cache_dir("npnet")``
(``~/.cache/npnet`` on Linux). Each data set gets a subdirectory of it.

Hashing a data file costs a full read, so the first successful verification of
a file is remembered in ``<cache root>/verified-files.json``, keyed by the file's
absolute path and its size, mtime and ctime (nanoseconds). A later load finds the
same stat values and reuses the recorded SHA-256 instead of recomputing it; any
change to the file changes the stat values and forces a fresh hash. The index is
a convenience: if it is missing, corrupt or the cache root is read-only, files
are simply hashed every time.
"""

import json
import os
import tempfile
from pathlib import Path

import platformdirs

CACHE_ENV_VAR = "NPNET_CACHE_DIR"
INDEX_NAME = "verified-files.json"
_INDEX_VERSION = 1


def cache_root():
    """The root of npnet's cache: ``$NPNET_CACHE_DIR`` or the platform's user cache dir."""
    override = os.environ.get(CACHE_ENV_VAR)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_cache_dir("npnet"))


def _stat_key(stat_result):
    return {
        "size": stat_result.st_size,
        "mtime_ns": stat_result.st_mtime_ns,
        "ctime_ns": stat_result.st_ctime_ns,
    }


class VerifiedIndex:
    """Remembers ``(absolute path, size, mtime_ns, ctime_ns) -> sha256`` across runs.

    Usage::

        index = VerifiedIndex.load()
        digest = index.lookup(path)            # None if unknown or changed
        if digest is None:
            digest = sha256_of(...)
            index.record(path, digest)
        index.save()                           # writes only if something changed
    """

    def __init__(self, file, entries):
        self.file = Path(file)
        self._entries = entries
        self._changed = False

    @classmethod
    def load(cls, file=None):
        """Read the index (default: ``<cache root>/verified-files.json``); never raises."""
        if file is None:
            file = cache_root() / INDEX_NAME
        entries = {}
        try:
            with open(file, encoding="utf-8") as f:
                content = json.load(f)
            if content.get("version") == _INDEX_VERSION:
                entries = dict(content["files"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
        return cls(file, entries)

    def lookup(self, path):
        """The recorded SHA-256 of ``path`` if the file is unchanged since, else None."""
        path = os.path.realpath(path)
        entry = self._entries.get(path)
        if not isinstance(entry, dict):
            return None
        try:
            current = _stat_key(os.stat(path))
        except OSError:
            return None
        recorded = {key: entry.get(key) for key in current}
        if recorded != current:
            return None
        return entry.get("sha256")

    def record(self, path, sha256):
        """Remember that ``path``, as it is now on disk, has content hash ``sha256``."""
        path = os.path.realpath(path)
        try:
            entry = _stat_key(os.stat(path))
        except OSError:
            return
        entry["sha256"] = sha256
        if self._entries.get(path) != entry:
            self._entries[path] = entry
            self._changed = True

    def save(self):
        """Write the index atomically if it changed; silently give up if we cannot."""
        if not self._changed:
            return
        # Forget files that no longer exist so the index does not grow forever.
        entries = {path: entry for path, entry in self._entries.items() if os.path.exists(path)}
        content = {"version": _INDEX_VERSION, "files": entries}
        temp_name = None
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            # Write to a temporary name in the same directory, then rename over
            # the index, so a reader never sees a half-written file.
            with tempfile.NamedTemporaryFile(
                "w",
                encoding="utf-8",
                dir=self.file.parent,
                prefix=f".{self.file.name}.",
                suffix=".tmp",
                delete=False,
            ) as f:
                temp_name = f.name
                json.dump(content, f, indent=1, sort_keys=True)
            os.replace(temp_name, self.file)
            temp_name = None
            self._changed = False
        except OSError:
            pass
        finally:
            if temp_name is not None:
                try:
                    os.remove(temp_name)
                except OSError:
                    pass

"""Reading zip members with their size bounded before a byte is decompressed."""

import collections
import zipfile

from . import limits
from .errors import FileTooLarge, ModelFileError


def open_archive(path):
    """A ``ZipFile`` for ``path`` whose directory is within :data:`limits.MAX_ZIP_MEMBERS`."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise ModelFileError(path, f"not a zip archive, or truncated or corrupted ({error})") from None
    if len(archive.infolist()) > limits.MAX_ZIP_MEMBERS:
        count = len(archive.infolist())
        archive.close()
        raise FileTooLarge(path, f"the archive lists {count} members; a model has at most "
                                 f"{limits.MAX_ZIP_MEMBERS}")
    twice = sorted(name for name, count in collections.Counter(archive.namelist()).items() if count > 1)
    if twice:
        archive.close()
        # zip readers disagree on which copy counts (Python's takes the last): refuse to guess
        raise ModelFileError(path, f"the archive holds more than one member named {', '.join(map(repr, twice))}; "
                                   "expected each member once")
    return archive


def read_member(archive, name, limit, path):
    """The bytes of member ``name``, refused if its declared or actual size exceeds ``limit``.

    The declared size is checked first; reading stops one byte past ``limit``, so a member
    that lies about its size cannot inflate further (zipfile then reports a bad CRC).
    """
    info = archive.getinfo(name)
    if info.file_size > limit:
        raise FileTooLarge(path, f"member {name!r} declares {info.file_size:,} bytes, more than "
                                 f"the {limit:,} it may hold")
    with archive.open(info) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(path, f"member {name!r} inflates beyond the {limit:,} bytes it may hold")
    return data

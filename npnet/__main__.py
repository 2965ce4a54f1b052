"""``python -m npnet ...`` is the same as the ``npnet`` command."""

import sys

from .cli import main

sys.exit(main())

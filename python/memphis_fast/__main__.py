"""``python -m memphis_fast``: the same as the ``memphis-fast`` command."""

import sys

from .cli import main

sys.exit(main())

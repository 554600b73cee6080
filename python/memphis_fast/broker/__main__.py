"""``python -m memphis_fast.broker``: the same as ``memphis-fast broker``."""

import sys

from .cli import main

sys.exit(main())

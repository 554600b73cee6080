"""memphis-fast's runner: the memphis-py API paths (``runner_memphis_api``) with ``import
memphis_fast``, plus ``produce_batch``, and the consume path both through ``consume()`` and
``fetch()``."""

from __future__ import annotations

import memphis_fast

try:
    from . import runner_common as rc
    from .runner_memphis_api import Api, make
except ImportError:  # run by path (see runner_common)
    import runner_common as rc  # type: ignore[no-redef]
    from runner_memphis_api import Api, make  # type: ignore[no-redef]

CLIENT = "memphis-fast"
HANDLERS = make(Api(CLIENT, memphis_fast))

if __name__ == "__main__":
    raise SystemExit(rc.main(CLIENT, HANDLERS))

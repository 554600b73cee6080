"""memphis-py 1.3.1's runner: the same code as memphis-fast's (``runner_memphis_api``), with
``import memphis``."""

from __future__ import annotations

import memphis

try:
    from . import runner_common as rc
    from .runner_memphis_api import Api, make
except ImportError:  # run by path (see runner_common)
    import runner_common as rc  # type: ignore[no-redef]
    from runner_memphis_api import Api, make  # type: ignore[no-redef]

CLIENT = "memphis-py"
HANDLERS = make(Api(CLIENT, memphis))

if __name__ == "__main__":
    raise SystemExit(rc.main(CLIENT, HANDLERS))

"""`python -m chaos`: the chaos suite (see chaos.schedule, `python -m chaos --help`)."""

from __future__ import annotations

import sys

from chaos.schedule import main

if __name__ == "__main__":
    sys.exit(main())

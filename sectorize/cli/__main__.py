"""``python -m sectorize.cli``: the ``sectorize`` command."""

import sys

from sectorize.cli.main import main

sys.exit(main())

"""``python -m edge.cli``: the same as the ``edgekit`` command."""

import sys

from edge.cli.main import main

sys.exit(main())

"""``python -m salbook`` is the ``salbook`` command."""

import sys

from .cli import main

sys.exit(main())

"""``python -m mongo_results``: the ``mongo-results`` command line."""

import sys

from .cli import main

sys.exit(main())

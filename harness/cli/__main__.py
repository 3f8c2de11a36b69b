"""``python -m harness.cli``: the ``hefsweep`` command."""

import sys

from harness.cli import main

sys.exit(main())

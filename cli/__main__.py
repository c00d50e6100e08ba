"""``python -m cli``: the ``rollout`` command."""

import sys

from cli.main import main

sys.exit(main())

"""``python -m utils COMMAND``: see `utils.cli`."""

import sys

from utils.cli import main

sys.exit(main())

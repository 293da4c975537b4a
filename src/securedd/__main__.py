"""``python -m securedd``."""

import sys

from securedd.cli.main import main

sys.exit(main())

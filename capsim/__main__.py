"""``python -m capsim`` runs the command line."""

import sys

from capsim.cli import main

sys.exit(main())

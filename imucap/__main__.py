"""``python -m imucap`` runs the command line."""

import sys

from imucap.cli.main import main

sys.exit(main())

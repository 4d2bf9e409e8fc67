"""Allow ``python -m neurogeom``."""

import sys

from . import main

sys.exit(main())

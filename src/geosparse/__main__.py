"""``python -m geosparse`` is the ``geosparse`` console script."""

import sys

from geosparse.cli import main

sys.exit(main())

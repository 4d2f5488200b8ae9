"""``python -m neurossm.cli``: the same as the ``neurossm`` command."""

import sys

from . import main

sys.exit(main())

"""``python -m neurossm`` is the ``neurossm`` command (``torchrun ... -m neurossm train`` launches it per rank)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())

"""``python -m diaggauss``: see :mod:`diaggauss._cli`."""

import sys

from diaggauss._cli import main

if __name__ == "__main__":
    sys.exit(main())

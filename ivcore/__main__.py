"""`python -m ivcore`: the command line of `ivcore.cli`."""

import sys

from ivcore.cli import main

if __name__ == "__main__":
    sys.exit(main())

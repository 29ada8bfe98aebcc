"""`python -m xgen`: the xgen command line."""

import sys

from xgen.cli import main

sys.exit(main())

"""`python -m pipelines.auth`: the command-line tool in `pipelines.auth.cli`."""

import sys

from pipelines.auth.cli import main

sys.exit(main())

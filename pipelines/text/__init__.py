"""Text before any model sees it: `normalize` (HTML to article, e-mail to the new message,
boilerplate out), `redact` (PII with Presidio) and `ner` (names from a token-classification
model), run in that order, with limits first, by `prepare` for every route; `sentences` (the
splitter every engine uses) and `chunking` (heading-aware chunks for the knowledge index).

May import: observe.
"""

"""The knowledge index over the user's own documents: what goes in and comes out (`documents`),
the index with its locking and versions (`index`), its files on disk (`snapshots`), where the
vectors live (`vectorstore`: FAISS or Qdrant), the flows the entry service runs (`retrieval`),
and `python -m pipelines.rag` to fill it from a folder (`cli`, through the in-process pipeline).

May import: text, batch.
"""

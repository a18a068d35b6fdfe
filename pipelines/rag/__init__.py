"""The knowledge index over the user's own documents: what goes in and comes out (`documents`),
what a write embeds (`planning`), the files backend with its locking and versions (`index`), its
files on disk (`snapshots`), where its vectors live (`vectorstore`: FAISS or Qdrant), the
PostgreSQL backend shared by replicas (`postgres`), the Protocol both meet and `open_index`, which
picks one (`backend`), the flows the entry service runs (`retrieval`), and `python -m
pipelines.rag` to fill it from a folder (`cli`, through the in-process pipeline).

May import: text, batch, postgres.
"""

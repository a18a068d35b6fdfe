"""Durable server jobs over a whole corpus: the job store and its states (`store`), its SQLite
file and storage faults (`database`), the runner that feeds documents to the batch core with
retries and backoff (`runner`), and the `/jobs` Starlette app the entry service mounts (`app`).

May import: observe, batch.
"""

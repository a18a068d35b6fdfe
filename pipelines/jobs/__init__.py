"""Durable server jobs over a whole corpus: what a job, a claim and a status are, and the
interface both stores give (`records`); the job store on one replica, in SQLite (`store`, its
file and storage faults in `database`) and shared by many replicas in PostgreSQL (`postgres`);
the runner that feeds documents to the batch core with retries, backoff and leases (`runner`);
and the `/jobs` Starlette app the entry service mounts (`app`).

May import: observe, batch, postgres.
"""

"""The job store's SQLite file: opening it, connections, transactions, and its faults as our errors.

Kept apart from `pipelines.jobs.store` (what a job is) so the storage plumbing lives in one place:

- a full volume raises StorageFull, a read-only one StorageReadOnly (507 both), another I/O
  error StorageError (503), a damaged file JobStoreCorrupt (503); each is logged with the path;
- a transaction that fails rolls back whole, and a failed ROLLBACK never hides why it failed;
- one connection stays open for the store's life so reads go on while the volume is full or
  read-only (see `open`), and a file that could not be opened is tried again at every call;
- columns added to the schema after a release are added to a file made before it (see `open`).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import quote

from pipelines.errors import StorageError, StorageFull, StorageReadOnly, SummarizerError, storage_error

WHAT = "the job store"
LOW_SPACE_BYTES = 1 << 20  # below this, an ambiguous SQLite I/O error is taken for a full volume
FAULT_LOG_INTERVAL_S = 60.0
WAL_LIMIT_BYTES = 64 << 20  # the WAL outlives connections (see open): truncate it after checkpoints
_REPAIR = "restore jobs.sqlite3 from a backup, or move it (with its -wal and -shm files) aside to start an empty store"
log = logging.getLogger("summarizer.jobs")



@contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that takes the lock at once, committed or rolled back."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        # SQLite may have rolled back already (a full disk does); a failed ROLLBACK must
        # not hide the real error, and closing the connection rolls back anyway.
        with suppress(sqlite3.Error):
            if db.in_transaction:
                db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")

class JobStoreCorrupt(SummarizerError):
    """The database file is damaged (not a database, or pages that fail SQLite's checks)."""

    status_code = 503
    public_message = None


class JobDatabase:
    """The SQLite file at `path` with `schema`; `folder` is created beside it (the uploads).
    `added_columns` (table, column, declaration) are columns `schema` has that an older file may lack."""

    def __init__(self, path: Path, schema: str, folder: Path, added_columns: Iterable[tuple[str, str, str]] = ()) -> None:
        self.path, self.schema, self.folder = path, schema, folder
        self.added_columns = tuple(added_columns)
        self._keeper: sqlite3.Connection | None = None
        self._open_lock = threading.Lock()
        self._last_fault: tuple[str, float] = ("", 0.0)

    def open(self) -> None:
        """Create the folder and schema, check the file, and keep one connection open.

        That connection is never used; it keeps SQLite's WAL files (`-wal`, `-shm`) alive. SQLite
        deletes them when its last connection closes, and with them gone not even a read can
        start on a full or read-only volume (it must create `-shm`): results already recorded
        would become unreadable exactly when the disk fills up.
        """
        if self._keeper is not None:
            return
        with self._open_lock, self._translated():
            if self._keeper is not None:
                return
            self.folder.mkdir(parents=True, exist_ok=True)
            keeper = self._new_connection()
            try:
                keeper.execute("PRAGMA journal_mode=WAL")
                keeper.executescript(self.schema)
                self._add_columns(keeper)
                # Whole-file check at start-up: garbage mid-file would otherwise surface as random
                # failures in the middle of a job.
                problems = [str(row[0]) for row in keeper.execute("PRAGMA quick_check(3)")]
                if problems != ["ok"]:
                    err = JobStoreCorrupt(f"{WHAT}'s database file is damaged; {_REPAIR}")
                    self._log_fault(err, "; ".join(problems).replace("\n", "; "))
                    raise err
            except BaseException:
                keeper.close()
                raise
            self._keeper = keeper

    def _add_columns(self, db: sqlite3.Connection) -> None:
        """Bring a file made by an older release up to `schema`: there is no migration framework,
        and SQLite adds a nullable column without rewriting the table."""

        def missing() -> list[tuple[str, str, str]]:
            present: dict[str, set[str]] = {}
            for table, _, _ in self.added_columns:
                if table not in present:
                    present[table] = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            return [added for added in self.added_columns if added[1] not in present[added[0]]]

        # Only a file that lacks one takes the write lock: an up-to-date one opens on a read-only volume.
        if not missing():
            return
        with immediate(db):
            for table, column, declaration in missing():  # again, under the lock: another worker may have added them
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
                log.info("job store %s: added the column %s.%s", self.path, table, column)

    def close(self) -> None:
        if self._keeper is not None:
            self._keeper.close()
            self._keeper = None

    def _new_connection(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=30000")
        db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
        return db

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[sqlite3.Connection]:
        with self._translated():
            try:
                self.open()
                db = self._new_connection()
            except StorageError as err:
                if not read_only:
                    raise
                db = self._frozen_reader(err)
            try:
                yield db
            finally:
                db.close()

    def _frozen_reader(self, err: StorageError) -> sqlite3.Connection:
        """A read-only view for a volume that was full or read-only before any connection was open.

        `immutable=1` needs no `-shm`, and is safe only when no `-wal` holds commits the main file
        lacks: a non-empty `-wal` means a live writer (or a crash), and then the error stands.
        """
        wal = self.path.with_name(self.path.name + "-wal")
        if not self.path.is_file() or (wal.exists() and wal.stat().st_size > 0):
            raise err
        return sqlite3.connect(f"file:{quote(str(self.path))}?mode=ro&immutable=1", uri=True, check_same_thread=False)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.connect() as db, immediate(db):
            yield db

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """SQLite and OS errors about the volume or the file become our errors, logged with the path."""
        try:
            yield
        except sqlite3.Error as exc:
            err = self._classify(exc)
            if err is None:
                raise
            self._log_fault(err, str(exc))
            raise err from exc
        except OSError as exc:
            err = storage_error(exc, WHAT)
            self._log_fault(err, str(exc))
            raise err from exc

    def _log_fault(self, err: SummarizerError, detail: str) -> None:
        """One line with the path; the same fault again only once a minute (clients may poll hard)."""
        last, at = self._last_fault
        if err.message != last or time.monotonic() - at >= FAULT_LOG_INTERVAL_S:
            self._last_fault = (err.message, time.monotonic())
            log.error("job store %s: %s (%s)", self.path, err.message, detail)

    def _classify(self, exc: sqlite3.Error) -> SummarizerError | None:
        name = getattr(exc, "sqlite_errorname", "")
        if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            return JobStoreCorrupt(f"{WHAT}'s database file is damaged; {_REPAIR}")
        if name.startswith("SQLITE_FULL"):
            return StorageFull(f"{WHAT} cannot store anything: its volume is full; free space, then retry")
        if not name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_IOERR")):
            return None  # a bug or a busy timeout, not the volume
        # SQLite says "disk I/O error" or "unable to open" for a full or read-only volume alike.
        try:
            vfs = os.statvfs(self.path.parent)
        except OSError:
            return StorageError(f"{WHAT} could not read or write its volume ({exc})")
        if vfs.f_flag & os.ST_RDONLY or name.startswith("SQLITE_READONLY"):
            return StorageReadOnly(f"{WHAT} cannot store anything: its volume is read-only")
        if vfs.f_bavail * vfs.f_frsize < LOW_SPACE_BYTES:
            return StorageFull(f"{WHAT} cannot store anything: its volume is full; free space, then retry")
        return StorageError(f"{WHAT} could not read or write its volume ({exc})")

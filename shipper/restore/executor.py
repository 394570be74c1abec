"""Carry out a restore plan: base backup, then binlog replay to the exact stop.

The order is what makes a restore safe:

1. Everything is read from the configured targets in order, primary first; an
   object missing or failing verification in one is read from the next
   (:mod:`shipper.restore.sources`), and the fallback is reported.
2. The base backup is spooled sealed and authenticated in full (context of
   its key, SHA-256 recorded for the backup) before anything is written to a
   datadir or sent to a server (:mod:`shipper.restore.base`).
3. Binlogs are replayed by the server's own applier or through
   ``mariadb-binlog | mariadb`` (:mod:`shipper.restore.replay`), each one
   authenticated in full first.

Progress is journalled in ``WORK_DIR/restore-state.json``. Killed at any
moment (SIGKILL included), the same command resumes or starts clean: the
private mariadbd a killed run left is found by the pid file in the work dir
and stopped cleanly; an interrupted base restore into a datadir this restore
created starts again from an empty datadir; the applier resumes from the
server's own relay-log position; the pipe resumes after the last fully
applied binlog, or (a binlog half replayed into our own datadir) starts clean.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from shipper.archive import sha256_file
from shipper.errors import RestoreError
from shipper.keys.base import KeyProvider
from shipper.restore import base, replay
from shipper.restore.model import ArchivedBinlog
from shipper.restore.planner import Plan, Step
from shipper.restore.server import RestoreServer
from shipper.restore.sources import Sources
from shipper.restore.tools import Conn, remove_option_files
from shipper.storage.base import StorageBackend

log = logging.getLogger(__name__)
REPLAY_PATHS = ("applier", "pipe")
#: called as progress(phase, done_bytes, total_bytes)
Progress = Callable[[str, int, int], None]


def _no_progress(phase: str, done: int, total: int) -> None:
    return None


@dataclass
class ApplyOptions:
    work_dir: Path
    datadir: Path | None = None
    target: Conn | None = None
    replay: str = "applier"
    parallel: int = 0
    backup_location: Path | None = None  # a registered backup's local copy
    server_args: list[str] = field(default_factory=list)  # extra mariadbd options
    progress: Progress = _no_progress
    #: load into a --target-dsn server that already holds user databases
    force: bool = False


@dataclass
class ApplyResult:
    stop_file: str
    stop_pos: int
    replayed_bytes: int
    seconds: dict[str, float] = field(default_factory=dict)
    #: what the operator should know: fallbacks to another target, a clean restart
    notices: list[str] = field(default_factory=list)


class _Journal:
    def __init__(self, path: Path, plan: Plan, into: str) -> None:
        self.path = path
        self.ident = {
            "into": into,
            "backup": plan.backup.id,
            "stop": str(plan.stop),
            "binlogs": [s.name for s in plan.steps],
        }
        self.doc: dict[str, Any] = {}
        self.reset()
        if path.exists():
            old = json.loads(path.read_text())
            if old.get("plan") != self.ident:
                raise RestoreError(
                    f"{path} belongs to another restore plan "
                    f"({old.get('plan')}); use a new --work-dir"
                )
            self.doc = old

    def reset(self, **keep: Any) -> None:
        self.doc = {"plan": self.ident, "base": False, "applied": [], **keep}

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(self.doc, indent=2))
        tmp.replace(self.path)


class Executor:
    def __init__(
        self,
        plan: Plan,
        store: StorageBackend | Sequence[StorageBackend],
        providers: Sequence[KeyProvider],
        opts: ApplyOptions,
        keys_in: Sequence[Mapping[str, str]] = (),
    ) -> None:
        """``store``: the target to read, or the targets in the order to try them;
        ``keys_in``: see :class:`Sources`."""
        if opts.replay not in REPLAY_PATHS:
            raise RestoreError(f"--replay must be one of {', '.join(REPLAY_PATHS)}")
        if (opts.datadir is None) == (opts.target is None):
            raise RestoreError(
                "give exactly one of --datadir DIR (a new server) or "
                "--target-dsn (an existing empty server)"
            )
        if opts.target is not None and plan.backup.tool == "mariabackup":
            raise RestoreError(
                "a mariabackup base backup restores into a datadir, not into "
                "a running server: use --datadir"
            )
        if opts.target is not None and opts.replay == "applier":
            raise RestoreError(
                "the applier replay needs the server's datadir (relay logs in it, a "
                "restart with relay-log options): use --datadir, or --replay pipe "
                "with --target-dsn"
            )
        self.plan = plan
        stores = list(store) if isinstance(store, Sequence) else [store]
        self.sources = Sources(stores, providers, keys_in)
        self.opts = opts
        # Spool, option files, journal, logs: private (an existing --work-dir is the
        # operator's to set; everything in it is created 0600 / 0700 all the same).
        opts.work_dir.parent.mkdir(parents=True, exist_ok=True)
        opts.work_dir.mkdir(mode=0o700, exist_ok=True)
        # Option files holding the target's password go under the work dir, so a rerun
        # removes what a killed run left (run()).
        self.target = (
            dataclasses.replace(opts.target, cnf_dir=str(opts.work_dir))
            if opts.target is not None
            else None
        )
        into = str(opts.datadir) if opts.datadir is not None else cast(Conn, opts.target).describe()
        self.journal = _Journal(opts.work_dir / "restore-state.json", plan, into)
        self.server: RestoreServer | None = None
        self.times: dict[str, float] = {}
        self.notices = self.sources.notices

    def notice(self, line: str) -> None:
        log.info("%s", line)
        self.notices.append(line)

    # -- the whole restore
    def run(self) -> ApplyResult:
        with self._exclusive():
            return self._run()

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One restore per work dir at a time: a rerun stops the server it finds
        recorded there, which must never be a live run's. The kernel drops the lock
        of a killed run (the servers we start do not inherit it: close_fds)."""
        fd = os.open(self.opts.work_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RestoreError(
                    f"another restore apply is running with work dir {self.opts.work_dir}: "
                    "wait for it, or stop it and run again"
                ) from None
            yield
        finally:
            os.close(fd)

    def _run(self) -> ApplyResult:
        total = sum(replay.step_size(s) for s in self.plan.steps)
        if self.journal.doc.get("done"):
            log.info("restore already completed per %s", self.journal.path)
            return ApplyResult(self.plan.stop.file, self.plan.stop.offset, total, {})
        if remove_option_files(self.opts.work_dir):
            log.info("removed client option files a killed run left in %s", self.opts.work_dir)
        try:
            conn = self._base()
            with self.timed("replay"):
                if self.plan.steps:
                    if self.opts.replay == "applier":
                        replay.replay_applier(self, cast(RestoreServer, self.server))
                    else:
                        replay.replay_pipe(self, conn)
            if self.server is not None:
                self.server.stop()
            self.journal.doc["done"] = True
            self.journal.save()
        finally:
            if self.server is not None:
                self.server.close()
        return ApplyResult(
            self.plan.stop.file, self.plan.stop.offset, total, self.times, self.notices
        )

    @contextlib.contextmanager
    def timed(self, what: str) -> Iterator[None]:
        t = time.monotonic()
        yield
        self.times[what] = self.times.get(what, 0.0) + time.monotonic() - t

    # -- base backup
    def _base(self) -> Conn:
        """Restore the base backup (once); start the server; return how to reach it."""
        if self.target is not None:
            self._base_into_server(self.target)
            return self.target
        datadir = cast(Path, self.opts.datadir)
        b = self.plan.backup
        ids = {s.server_id for s in self.plan.steps} | {b.server_id}
        sid = 4_294_900_000
        while sid in ids:
            sid += 1
        extra = [f"--slave-parallel-threads={self.opts.parallel}"] if self.opts.parallel else []
        extra += self.opts.server_args
        self.server = RestoreServer(
            datadir, server_id=sid, extra_args=extra, state_dir=self.opts.work_dir
        )
        if self.server.stop_stale():
            self.notice(f"stopped the restoring mariadbd an interrupted run left on {datadir}")
        doc = self.journal.doc
        partial = doc.get("applying")
        if partial and doc.get("datadir_ours"):
            # Its transactions cannot be re-applied safely, but the datadir is ours.
            self.notice(
                f"binlog {partial} was partly replayed when the restore was interrupted: "
                f"starting clean in {datadir}"
            )
            base.clear_dir(datadir)
            self.journal.reset(datadir_ours=True)
            self.journal.save()
        elif partial:
            raise RestoreError(_PARTIAL.format(name=partial))
        if not self.journal.doc["base"]:  # (a clean start replaced the journal's doc)
            self._base_into_datadir(datadir)
        elif not (self.opts.replay == "applier" and self.plan.steps):
            self.server.start()
        return self.server.conn

    def _base_into_datadir(self, datadir: Path) -> None:
        server = cast(RestoreServer, self.server)
        doc = self.journal.doc
        if datadir.exists() and any(datadir.iterdir()):
            if not doc.get("datadir_ours"):
                raise RestoreError(
                    f"--datadir {datadir} is not empty: restore into a new "
                    "directory (nothing is ever written over)"
                )
            self.notice(
                f"the base restore into {datadir} was interrupted: starting it again "
                "from an empty datadir"
            )
            base.clear_dir(datadir)
        doc["datadir_ours"] = True
        self.journal.save()
        with self._spooled() as unseal, self.timed("base"):
            if self.plan.backup.tool == "mariabackup":
                base.restore_physical(
                    unseal, self.opts.backup_location, self.opts.work_dir, datadir
                )
                # The applier path starts it once its relay logs are in place.
                if not (self.opts.replay == "applier" and self.plan.steps):
                    server.start()
            else:
                server.install()
                server.start()
                base.load_dump(
                    unseal,
                    self.opts.backup_location,
                    server.conn,
                    self.opts.work_dir,
                    self.plan.backup.id,
                )
        doc["base"] = True
        self.journal.save()

    def _base_into_server(self, conn: Conn) -> None:
        doc = self.journal.doc
        if doc.get("applying"):
            raise RestoreError(_PARTIAL.format(name=doc["applying"]))
        if doc["base"]:
            return
        if doc.get("base_started"):
            self.notice(
                f"loading the dump into {conn.describe()} was interrupted: loading it again "
                "(it drops and recreates each table it holds)"
            )
        else:
            found = base.user_databases(conn)
            if found and not self.opts.force:
                raise RestoreError(
                    f"the target server {conn.describe()} already holds user database(s) "
                    f"{', '.join(found)}: the dump would be mixed into them or drop their "
                    "tables. Restore into an empty server (or a new --datadir), or give "
                    "--force to load over them"
                )
            if found:
                self.notice(f"--force: loading into {conn.describe()} over {', '.join(found)}")
        with self._spooled() as unseal:
            doc["base_started"] = True
            self.journal.save()
            with self.timed("base"):
                # The target's own accounts stay: its mysql schema is never loaded over.
                base.load_dump(
                    unseal,
                    self.opts.backup_location,
                    conn,
                    self.opts.work_dir,
                    self.plan.backup.id,
                    skip_schemas=("mysql",),
                )
        doc["base"] = True
        self.journal.save()

    @contextlib.contextmanager
    def _spooled(self) -> Iterator[Callable[[IO[bytes]], None] | None]:
        """The base backup spooled and authenticated; yields how to unseal it (None
        for a registered backup read from --backup-location). The spool is removed
        on the way out."""
        b = self.plan.backup
        if not b.object_key:
            if self.opts.backup_location is None:
                raise RestoreError(
                    f"backup {b.id} is registered without an archived object: give its "
                    "local copy with --backup-location"
                )
            yield None
            return
        spool = self.opts.work_dir / f"{b.id}.sealed"
        with self.timed("spool"):
            self.sources.spool_backup(b, spool)
        try:
            yield lambda sink: self.sources.unseal_spool(b, spool, sink)
        finally:
            spool.unlink(missing_ok=True)

    # -- fetching binlogs
    def fetch(self, step: Step, dest: Path) -> Path:
        if step.object_key is None:
            raise RestoreError(f"binlog {step.name} has no object key in the manifest")
        if dest.exists() and step.sha256 and sha256_file(dest) == step.sha256:
            return dest
        return self.sources.fetch_binlog(step.object_key, dest, step.sha256, step.name)


_PARTIAL = (
    "binlog {name} was partly replayed through the pipe when the restore was "
    "interrupted; its transactions cannot be re-applied safely into a server this "
    "restore does not own. Restore again into an empty server (or a new --datadir, "
    "where an interrupted restore starts clean by itself)"
)


def archived_from_manifest(rows: Sequence[Any]) -> list[ArchivedBinlog]:
    return [ArchivedBinlog.from_row(r) for r in rows]

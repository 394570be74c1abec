"""Replaying the archived binlogs to the planned stop.

Two paths:

* ``applier`` (default): the decrypted binlogs become the restored server's
  relay logs; ``CHANGE MASTER TO ... MASTER_LOG_FILE/POS, RELAY_LOG_FILE/POS``
  points the replication SQL thread at the start, and ``START SLAVE SQL_THREAD
  UNTIL MASTER_LOG_FILE=..., MASTER_LOG_POS=<stop>`` runs it to the stop. Both
  MASTER_LOG_FILE and RELAY_LOG_FILE are always given: RELAY_LOG_FILE alone
  crashed MariaDB 10.11 (signal 11). The server applies ROW events natively,
  an order of magnitude faster than text SQL. Resuming is exact: the server
  keeps its own relay-log position.
* ``pipe``: ``mariadb-binlog --start-position --stop-position FILE | mariadb``,
  fetching the next binlog while the current one replays. Resuming continues
  after the last fully applied binlog.

Every binlog is fetched to a file and authenticated in full before any of it
is replayed (:meth:`Sources.fetch_binlog`).
"""

from __future__ import annotations

import concurrent.futures
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from shipper.errors import RestoreError
from shipper.restore.planner import Step
from shipper.restore.server import RestoreServer
from shipper.restore.tools import Conn, find_tool, run_sql, run_sql_dicts

if TYPE_CHECKING:
    from shipper.restore.executor import Executor


def step_size(s: Step) -> int:
    end = s.stop if s.stop is not None else (s.size or 0)
    return max(0, end - s.start)


def replay_applier(ex: Executor, server: RestoreServer) -> None:
    steps = ex.plan.steps
    doc = ex.journal.doc
    total = sum(step_size(s) for s in steps)
    relays = [server.datadir / server.relay_name(i + 1) for i in range(len(steps))]
    configured = bool(doc.get("applier_started"))
    if not configured:
        with ex.timed("fetch"):
            done = 0
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                futs = [pool.submit(ex.fetch, s, r) for s, r in zip(steps, relays, strict=True)]
                for s, f in zip(steps, futs, strict=True):
                    f.result()
                    done += step_size(s)
                    ex.opts.progress("fetch", done, total)
        server.relay_index.write_text("".join(f"{r}\n" for r in relays))
        # The relay log index is read at startup: (re)start to pick it up.
        server.stop()
    if server.proc is None:
        with ex.timed("server_start"):
            server.start()
    stop = ex.plan.stop
    first = steps[0]
    if not configured:
        # Nothing is applied until START SLAVE: a run killed before the journal says
        # "configured" can safely point the applier at the start again.
        run_sql(
            server.conn,
            f"CHANGE MASTER TO MASTER_HOST='restore.invalid', MASTER_USER='restore', "
            f"MASTER_LOG_FILE='{first.name}', MASTER_LOG_POS={first.start}, "
            f"RELAY_LOG_FILE='{relays[0].name}', RELAY_LOG_POS={first.start}",
        )
        doc["applier_started"] = True
        ex.journal.save()
    run_sql(
        server.conn,
        f"START SLAVE SQL_THREAD UNTIL MASTER_LOG_FILE='{stop.file}', MASTER_LOG_POS={stop.offset}",
    )
    sizes = {s.name: (i, s) for i, s in enumerate(steps)}
    cur, pos = "", 0
    while True:
        st = _slave_status(server.conn)
        if st.get("Last_SQL_Error"):
            raise RestoreError(
                f"the replication applier stopped with an error at "
                f"{st.get('Relay_Master_Log_File')}:"
                f"{st.get('Exec_Master_Log_Pos')}: {st['Last_SQL_Error']}"
            )
        cur = st.get("Relay_Master_Log_File", "")
        pos = int(st.get("Exec_Master_Log_Pos") or 0)
        if cur in sizes:
            i, s = sizes[cur]
            done = sum(step_size(x) for x in steps[:i]) + max(0, pos - s.start)
            ex.opts.progress("replay", min(done, total), total)
        if st.get("Slave_SQL_Running") != "Yes":
            break
        # Block (up to 1 s) in the server until the applier reaches the stop, rather
        # than polling: every poll is a client process competing for the CPU.
        wait = run_sql(server.conn, f"SELECT MASTER_POS_WAIT('{stop.file}', {stop.offset}, 1)")
        if not wait or wait[0][0] == "NULL":
            time.sleep(0.1)  # the SQL thread is not running (stopping, or an error)
    if (cur, pos) != (stop.file, stop.offset):
        raise RestoreError(
            f"the applier stopped at {cur}:{pos}, not at the planned stop "
            f"{stop}; the restored server is NOT at the target"
        )
    run_sql(server.conn, "STOP SLAVE; RESET SLAVE ALL")
    ex.opts.progress("replay", total, total)


def _slave_status(conn: Conn) -> dict[str, str]:
    rows = run_sql_dicts(conn, "SHOW SLAVE STATUS")
    if not rows:
        raise RestoreError("SHOW SLAVE STATUS is empty: the applier was not set up")
    return rows[0]


def replay_pipe(ex: Executor, conn: Conn) -> None:
    """Replay through ``mariadb-binlog | mariadb``; a binlog is journalled as applied
    only once the client exited 0 (the caller handles one that was partly applied)."""
    steps = ex.plan.steps
    doc = ex.journal.doc
    total = sum(step_size(s) for s in steps)
    applied: list[str] = doc["applied"]
    todo = [s for s in steps if s.name not in applied]
    bdir = ex.opts.work_dir / "binlogs"
    bdir.mkdir(mode=0o700, exist_ok=True)  # decrypted binlogs
    binlog_tool = find_tool("mariadb-binlog", "mysqlbinlog")
    client = find_tool("mariadb", "mysql")
    done = sum(step_size(s) for s in steps if s.name in applied)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        nxt = pool.submit(ex.fetch, todo[0], bdir / todo[0].name) if todo else None
        for i, s in enumerate(todo):
            assert nxt is not None
            with ex.timed("fetch_wait"):
                path = nxt.result()
            if i + 1 < len(todo):  # fetch the next binlog while this one replays
                nxt = pool.submit(ex.fetch, todo[i + 1], bdir / todo[i + 1].name)
            doc["applying"] = s.name
            ex.journal.save()
            _pipe_one(binlog_tool, client, conn, s, path)
            applied.append(s.name)
            doc["applying"] = None
            ex.journal.save()
            path.unlink(missing_ok=True)
            done += step_size(s)
            ex.opts.progress("replay", done, total)


def _pipe_one(binlog_tool: str, client: str, conn: Conn, s: Step, path: Path) -> None:
    cmd = [binlog_tool, f"--start-position={s.start}"]
    if s.stop is not None:
        cmd.append(f"--stop-position={s.stop}")
    cmd.append(str(path))
    with conn.args() as a:
        dec = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        cli = subprocess.run(
            [client, *a, "--binary-mode"], stdin=dec.stdout, capture_output=True, check=False
        )
        assert dec.stdout is not None
        dec.stdout.close()
        derr = dec.stderr.read() if dec.stderr else b""
        drc = dec.wait()
    if drc != 0 or cli.returncode != 0:
        raise RestoreError(
            f"replaying {s.name} ({s.start}..{s.stop or 'end'}) failed: "
            f"mariadb-binlog exit {drc}: {derr.decode(errors='replace')[-800:]}; "
            f"mariadb exit {cli.returncode}: {cli.stderr.decode(errors='replace')[-800:]}"
        )

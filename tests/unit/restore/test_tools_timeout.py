"""A client that gets no answer in time is a DatabaseError, not a raw TimeoutExpired.

A restoring server that is still starting under load accepts the connection
but does not greet for a while; the readiness poll must see "not yet" rather
than die with an internal error.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from shipper.errors import DatabaseError
from shipper.restore.tools import Conn, run_sql, run_sql_dicts


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    for s in held:
        s.close()
    srv.close()


@pytest.mark.parametrize("fn", [run_sql, run_sql_dicts])
def test_a_server_that_never_answers_is_a_database_error(silent_server: int, fn: object) -> None:
    conn = Conn(host="127.0.0.1", port=silent_server, user="root")
    with pytest.raises(DatabaseError, match="did not answer in 1 s"):
        fn(conn, "SELECT 1", timeout=1)  # type: ignore[operator]

"""What wakes the watch loop (real inotify through watchdog, in a temp dir)."""

from __future__ import annotations

import re
import threading
from pathlib import Path

from shipper.cli.watcher import Wake, rfc3339, watch_dir


class Recorder(Wake):
    """A Wake that also says which kind of event reached it."""

    def __init__(self) -> None:
        super().__init__()
        self.kinds: list[str] = []
        self.got = threading.Event()

    def poke(self) -> None:
        self.kinds.append("poke")
        self.got.set()
        super().poke()

    def created(self, name: str) -> None:
        self.kinds.append(f"created {name}")
        self.got.set()
        super().created(name)


def test_a_rotation_wakes_the_loop_and_writes_to_the_active_binlog_do_not(
    tmp_path: Path,
) -> None:
    active = tmp_path / "mysql-bin.000001"
    active.write_bytes(b"x")
    wake = Recorder()
    observer = watch_dir(tmp_path, wake)
    try:
        # the active binlog growing, then the rotation: the new file, the index written
        with active.open("ab") as f:
            for _ in range(20):
                f.write(b"event")
                f.flush()
        (tmp_path / "mysql-bin.000002").write_bytes(b"")
        assert wake.got.wait(10)
        wake.got.clear()
        (tmp_path / "mysql-bin.index").write_text("./mysql-bin.000001\n./mysql-bin.000002\n")
        assert wake.got.wait(10)
    finally:
        observer.stop()
        observer.join()
    # the writes to mysql-bin.000001 came first and woke nothing
    assert wake.kinds[0] == "created mysql-bin.000002", wake.kinds
    assert "poke" in wake.kinds  # the index file


def test_rotation_pending_until_the_server_reports_the_new_file() -> None:
    wake = Wake()
    wake.created("mysql-bin.000007")
    assert wake.rotation_pending("mysql-bin.000006")  # server not switched yet
    assert not wake.rotation_pending("mysql-bin.000007")  # now it has
    assert not wake.rotation_pending("mysql-bin.000006")  # and it is forgotten
    wake.created("relay-bin.000009")  # another stem: never waited for
    assert not wake.rotation_pending("mysql-bin.000007")


def test_rfc3339_is_utc_with_milliseconds() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rfc3339())

"""Writing verified plaintext to what the user named, never replacing what is there.

``fetch -o`` used to write a temp file and ``os.replace`` it over the target:
run as root with ``-o /dev/null`` that replaced the null device with a 0600
regular file, and every service on the machine running as another user lost
``/dev/null``. The destination is the user's; these are the rules:

==========================  ===========================================================
destination                 what happens
==========================  ===========================================================
``-``                       streamed to stdout
char/block device, FIFO     opened ``O_WRONLY`` (no ``O_CREAT``, no ``O_TRUNC``) and
                            written; never unlinked, replaced or chmodded
unix socket                 connected to and written
symlink                     what it points at, by the rules for that; the link itself
                            is never replaced
existing regular file       refused (exit 5) unless ``--force``; with ``--force``
                            replaced atomically (temp beside it + rename; the new
                            file is 0600, owned by the user running fetch)
new path                    temp beside it, then linked into place (``os.link`` fails
                            if the name appeared meanwhile); 0600
directory                   refused (exit 2)
==========================  ===========================================================

Plaintext reaches the destination only after the whole object authenticated:
``produce`` decrypts it into a private temp file first (beside a regular-file
destination, so the final rename is atomic; otherwise in a private 0700
directory under the state dir) and only then is it renamed or copied over.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import socket
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from shipper.errors import ConfigError, PreconditionFailed, ShipperError

T = TypeVar("T")
Kind = Literal["stdout", "stream", "socket", "file", "new"]
_CHUNK = 1 << 20


class OutputExists(PreconditionFailed):
    """The destination is an existing regular file and ``--force`` was not given."""


class OutputError(ShipperError):
    """The destination could not be written."""


@dataclass(frozen=True)
class Destination:
    """Where the plaintext goes: what the user named, and what it resolved to."""

    given: str
    path: Path | None  # symlinks resolved; None for stdout
    kind: Kind

    def __str__(self) -> str:
        if self.path is None:
            return "stdout"
        if str(self.path) != self.given:
            return f"{self.given} (-> {self.path})"
        return self.given


def resolve(given: str, *, force: bool = False) -> Destination:
    """Classify ``given`` before anything is downloaded, refusing what must be refused."""
    if given == "-":
        return Destination(given, None, "stdout")
    real = Path(os.path.realpath(given))  # follows every symlink, also a dangling one
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return Destination(given, real, "new")
    except OSError as e:
        raise ConfigError(f"-o {given}: {e.strerror}") from e
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"-o {given} is a directory; name a file inside it")
    if stat.S_ISREG(st.st_mode):
        if not force:
            raise OutputExists(
                f"-o {Destination(given, real, 'file')} already exists; pass --force to replace it"
            )
        return Destination(given, real, "file")
    if stat.S_ISSOCK(st.st_mode):
        return Destination(given, real, "socket")
    return Destination(given, real, "stream")  # a device or a FIFO


def write(dest: Destination, produce: Callable[[Path], T], *, scratch: Path | None) -> T:
    """Call ``produce(tmp)`` to write the verified plaintext to the new file ``tmp``,
    then deliver it to ``dest``. ``scratch`` is a private place for ``tmp`` when the
    destination is not a regular file (the state dir; None: the system temp dir)."""
    with _temp_path(dest, scratch) as tmp:
        result = produce(tmp)
        try:
            _deliver(dest, tmp)
        except OSError as e:
            raise OutputError(f"cannot write to {dest}: {e.strerror}") from e
    return result


@contextlib.contextmanager
def _temp_path(dest: Destination, scratch: Path | None) -> Iterator[Path]:
    if dest.kind in ("file", "new"):
        assert dest.path is not None
        parent = dest.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"cannot create {parent} for -o {dest.given}: {e.strerror}") from e
        tmp = parent / f".{dest.path.name}.{secrets.token_hex(4)}.fetching"
        try:
            yield tmp
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return
    root = scratch if scratch is not None and os.access(scratch, os.W_OK | os.X_OK) else None
    private = Path(tempfile.mkdtemp(prefix=".fetch-", dir=root))  # 0700
    try:
        yield private / "plaintext"
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _deliver(dest: Destination, tmp: Path) -> None:
    if dest.kind == "stdout":
        _to_stdout(tmp)
    elif dest.kind == "new":
        assert dest.path is not None
        _publish_new(tmp, dest)
    elif dest.kind == "file":
        assert dest.path is not None
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISREG(os.lstat(dest.path).st_mode):  # changed while fetching
                raise OutputExists(f"-o {dest} is no longer a regular file; not replacing it")
        os.replace(tmp, dest.path)  # --force: atomic, never a half-written file
    elif dest.kind == "socket":
        assert dest.path is not None
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s, tmp.open("rb") as f:
            s.connect(str(dest.path))
            s.sendfile(f)
    else:
        assert dest.path is not None
        _to_stream(tmp, dest)


def _publish_new(tmp: Path, dest: Destination) -> None:
    assert dest.path is not None
    try:
        os.link(tmp, dest.path)  # an atomic "must not exist"
    except FileExistsError:
        raise OutputExists(
            f"-o {dest} appeared while fetching; not replacing it (pass --force)"
        ) from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EOPNOTSUPP):
            raise
        # a filesystem without hardlinks: a rename, after a last look
        if os.path.lexists(dest.path):
            raise OutputExists(f"-o {dest} appeared while fetching; not replacing it") from e
        os.rename(tmp, dest.path)


def _to_stream(tmp: Path, dest: Destination) -> None:
    """Write into an existing device or FIFO without creating, truncating or replacing it."""
    assert dest.path is not None
    fd = os.open(dest.path, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):  # replaced by a file since it was checked
            raise OutputExists(f"-o {dest} is now a regular file; not writing over it")
        with tmp.open("rb") as f:
            while chunk := f.read(_CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _to_stdout(tmp: Path) -> None:
    out = sys.stdout.buffer
    try:
        with tmp.open("rb") as f:
            shutil.copyfileobj(f, out, _CHUNK)
        out.flush()
    except BrokenPipeError as e:
        raise OutputError("stdout was closed before every byte was written") from e

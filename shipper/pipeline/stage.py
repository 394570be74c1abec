"""Staging: a closed binlog's bytes, held in the state dir until they are archived.

The server's binlogs are not ours. Staging reads them and never changes them:
no chmod, no rename, and nothing is followed through a symlink.

* The source is opened ``O_RDONLY | O_NOFOLLOW | O_NONBLOCK``. A symlink in the
  binlog dir is refused (it could point anywhere; following it once let a chmod
  reach the target), and so is anything that is not a regular file (a FIFO, a
  device, a directory): ``O_NONBLOCK`` keeps a FIFO from hanging the open.
* A hardlink keeps the bytes even if the server purges the binlog meanwhile. The
  link *is* the server's inode, so it is never chmodded: the staging dir (0700)
  is what keeps it private. The new link is checked to be the inode that was
  opened, so a name swapped in between is never staged.
* Where a link is not allowed (another filesystem: EXDEV; a non-owner under
  ``fs.protected_hardlinks``: EPERM; EACCES, EMLINK) or the file was purged
  after it was opened (ENOENT), the bytes are copied from the open descriptor
  to a temp name (0600), fsynced and renamed, so a crash never leaves a partial
  stage that looks whole. A copy that runs out of space is removed and reported
  with the space it needs.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from pathlib import Path

from shipper.errors import StateError
from shipper.objects import OBJECT_SUFFIX

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
#: link errors that mean "copy instead" rather than "the state dir is broken"
_COPY_INSTEAD = frozenset(
    {errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK, errno.ENOENT, errno.EOPNOTSUPP}
)
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
_CHUNK = 1 << 20


def stage(src: Path, dst: Path) -> None:
    """Hardlink (or copy) the regular file ``src`` to ``dst``; ``src`` is never modified.

    FileNotFoundError if ``src`` is gone; StateError (naming the file) if it is a
    symlink, not a regular file, unreadable, or the state dir cannot take it.
    """
    if os.path.lexists(dst):
        return
    fd = open_source(src)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StateError(
                f"binlog {src} is not a regular file ({_kind(st.st_mode)}); "
                "refusing to stage it (only the server's own binlog files are shipped)"
            )
        if not _link(src, dst, st):
            _copy(fd, src, dst, st.st_size)
    finally:
        os.close(fd)


def open_source(src: Path) -> int:
    """``src`` opened read-only without following a symlink: a file descriptor."""
    try:
        return os.open(src, _OPEN_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise StateError(
                f"binlog {src} is a symlink; the shipper does not follow links in the "
                "binlog dir (point mysql.binlog_dir at the directory that holds the files)"
            ) from e
        if e.errno in (errno.EACCES, errno.EPERM):
            raise StateError(
                f"binlog {src} is not readable by this user ({e.strerror}); give the "
                "shipper read access to the binlog dir (e.g. the server's group)"
            ) from e
        raise StateError(f"cannot open binlog {src}: {e.strerror}") from e


def _link(src: Path, dst: Path, opened: os.stat_result) -> bool:
    """Hardlink ``src`` to ``dst``; False when a copy must be made instead."""
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError as e:
        if e.errno in _COPY_INSTEAD:
            return False
        raise StateError(f"cannot stage {src} into {dst.parent}: {e.strerror}") from e
    linked = os.lstat(dst)
    if (linked.st_dev, linked.st_ino) != (opened.st_dev, opened.st_ino):
        # The name was replaced between open and link: not the file we checked.
        os.unlink(dst)
        return False
    return True


def _copy(fd: int, src: Path, dst: Path, size: int) -> None:
    """Copy the open ``fd`` to ``dst`` through a temp name: 0600, fsynced, renamed."""
    tmp = dst.with_name(dst.name + ".copying")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # left by a crash: never resumed, always redone
    try:
        out = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
    except OSError as e:
        raise _state_error(e, src, dst, size) from e
    try:
        try:
            _pump(fd, out, src)
            os.fsync(out)
        finally:
            os.close(out)
        os.rename(tmp, dst)
        _fsync_dir(dst.parent)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(e, OSError):
            raise _state_error(e, src, dst, size) from e
        raise


def _pump(fd: int, out: int, src: Path) -> None:
    offset = 0
    while True:
        try:
            data = os.pread(fd, _CHUNK, offset)
        except OSError as e:
            raise StateError(f"cannot read binlog {src}: {e.strerror}") from e
        if not data:
            return
        view = memoryview(data)
        while view:
            view = view[os.write(out, view) :]
        offset += len(data)


def _state_error(e: OSError, src: Path, dst: Path, size: int) -> StateError:
    if e.errno in _NO_SPACE:
        try:
            vfs = os.statvfs(dst.parent)
            free = f"{vfs.f_bavail * vfs.f_frsize} bytes are free"
        except OSError:
            free = "free space unknown"
        return StateError(
            f"state dir {dst.parent} is out of space staging {src}: a copy needs "
            f"{size} bytes, {free}; the partial copy was removed (free space there, or "
            "put state_dir on the binlogs' filesystem so staging is a hardlink)"
        )
    return StateError(f"cannot copy {src} into {dst.parent}: {e.strerror}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    for test, word in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return word
    return f"mode {stat.filemode(mode)}"


def staged_files(staging: Path, name: str) -> tuple[Path, Path]:
    """(the staged binlog, its sealed envelope) for ``name``."""
    return staging / name, staging / (name + OBJECT_SUFFIX)


def unstage(staging: Path, name: str) -> None:
    for p in staged_files(staging, name):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def staged_name(path: Path) -> str:
    """The binlog name a staging file belongs to (whatever its temp suffix)."""
    name = path.name
    for suffix in (".tmp", ".copying", OBJECT_SUFFIX):
        name = name.removesuffix(suffix)
    return name.removesuffix(OBJECT_SUFFIX)


def file_identity(path: Path) -> str | None:
    """sha256 of a binlog's first 4 KiB: its format description event, dated to the
    second it was created, tells two files of the same name apart.

    None when ``path`` cannot be read as a regular file (a symlink, a FIFO, no
    permission): staging then reports why. FileNotFoundError if it is gone.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return hashlib.sha256(os.pread(fd, 4096, 0)).hexdigest()
    except OSError:
        return None
    finally:
        os.close(fd)

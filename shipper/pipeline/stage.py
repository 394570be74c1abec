"""Staging: a closed binlog's bytes, held in the state dir until they are archived.

A hardlink keeps the bytes even if the server purges the binlog meanwhile; across
filesystems a copy goes to a temp name first, so a crash never leaves a partial
stage that looks whole.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
from pathlib import Path

from shipper.errors import StateError
from shipper.objects import OBJECT_SUFFIX


def stage(src: Path, dst: Path) -> None:
    """Hardlink (or copy) ``src`` to ``dst``, mode 0600. FileNotFoundError if ``src`` is gone."""
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError as e:
        if e.errno != errno.EXDEV:
            if e.errno == errno.ENOENT:
                raise FileNotFoundError(str(src)) from e
            raise StateError(f"cannot stage {src} into {dst.parent}: {e.strerror}") from e
        tmp = dst.with_name(dst.name + ".copying")
        shutil.copyfile(src, tmp)
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dst)
    with contextlib.suppress(PermissionError):
        os.chmod(dst, 0o600)


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


def file_identity(path: Path) -> str:
    """sha256 of a binlog's first 4 KiB: its format description event, dated to the
    second it was created, tells two files of the same name apart."""
    with path.open("rb") as f:
        return hashlib.sha256(f.read(4096)).hexdigest()

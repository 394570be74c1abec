"""Build the function packages (``make functions``).

``dist/functions/aws-lambda.zip``: ``functions/aws/`` (handlers named
``functions/aws/verify_replicate.handler`` and ``functions/aws/restore_planner.handler``
by infra/terraform), the ``shipper`` package and its runtime dependencies, installed
with ``pip install --target`` for the Lambda's Python and platform. boto3, botocore
and s3transfer are left out: the Lambda runtime provides them (aws-xray-sdk pulls
botocore in, so they are removed after the install). No tests, no bytecode. The
zip is deterministic (sorted entries, fixed timestamps and modes): the same
source gives the same bytes, so Terraform redeploys only on a real change.

``dist/functions/gcp/``: ``main.py`` at the top (the Cloud Function's entry point
``verify_replicate``), the ``shipper`` package beside it, and ``requirements.txt``
(the runtime dependencies, pinned to the versions the tests ran with) that Cloud
Build installs. infra/terraform zips this directory itself.

Both sizes are printed; the build fails when the Lambda package is over the
Lambda limits (50 MB zipped, 250 MB unzipped).

    python functions/build.py [--out dist/functions] [--python-version 3.12]
                              [--platform manylinux2014_x86_64]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints.txt"
ZIP_LIMIT = 50 * 1000 * 1000
UNZIPPED_LIMIT = 250 * 1000 * 1000
#: the Lambda runtime's own (and only the runtime may upgrade them)
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")
#: what each package needs beyond the shipper's own dependencies (pyproject extras)
AWS_ONLY_DROP = {"boto3", "functions-framework"}
GCP_EXTRA = ("gcp",)
GCP_DROP = {"aws-lambda-powertools"}
#: 1980-01-01, the earliest time a zip entry can hold
EPOCH = (1980, 1, 1, 0, 0, 0)


class BuildError(Exception):
    pass


def _name(req: str) -> str:
    m = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req)
    if not m:
        raise BuildError(f"pyproject.toml: cannot read requirement {req!r}")
    return m.group(0).lower().replace("_", "-")


def _pinned(req: str) -> str:
    """``name[extras]==installed version`` (the version the tests ran with), or the
    requirement as written when it is not installed here."""
    name = _name(req)
    extras = re.search(r"\[[^\]]*\]", req)
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        return req
    return f"{name}{extras.group(0) if extras else ''}=={version}"


def requirements(kind: str) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"]) + list(project["optional-dependencies"]["functions"])
    if kind == "aws":
        drop = AWS_ONLY_DROP
    else:
        for extra in GCP_EXTRA:
            reqs += project["optional-dependencies"][extra]
        drop = GCP_DROP
    out: dict[str, str] = {}
    for r in reqs:
        if _name(r) not in drop:
            out.setdefault(_name(r), _pinned(r))
    return sorted(out.values())


def _copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "tests"))


def _pip_install(reqs: list[str], target: Path, python_version: str, platform: str) -> None:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-compile",
        "--target",
        str(target),
        "--python-version",
        python_version,
        "--platform",
        platform,
        "--implementation",
        "cp",
        "--only-binary=:all:",
        # the versions the tests ran with (constraints.txt), so a rebuild is the same
        *(["--constraint", str(CONSTRAINTS)] if CONSTRAINTS.is_file() else []),
        *reqs,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.splitlines()[-15:])
        raise BuildError(f"pip install --target {target} failed:\n{tail}")


def _drop_runtime_provided(site: Path) -> None:
    for p in site.iterdir():
        stem = p.name.split("-")[0].lower() if p.name.endswith(".dist-info") else p.name
        if stem in RUNTIME_PROVIDED:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts: never run in Lambda


def _files(root: Path) -> Iterable[Path]:
    for p in sorted(root.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc":
            yield p


def write_zip(root: Path, out: Path) -> int:
    """A deterministic zip of ``root``; returns the unzipped size."""
    total = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for p in _files(root):
            info = zipfile.ZipInfo(p.relative_to(root).as_posix(), EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            data = p.read_bytes()
            total += len(data)
            z.writestr(info, data, compresslevel=9)
    tmp.replace(out)
    return total


def build_aws(out: Path, python_version: str, platform: str) -> tuple[Path, int, int]:
    with tempfile.TemporaryDirectory(prefix="aws-lambda-") as d:
        site = Path(d)
        _pip_install(requirements("aws"), site, python_version, platform)
        _drop_runtime_provided(site)
        (site / "functions").mkdir()
        (site / "functions" / "__init__.py").write_bytes(
            (ROOT / "functions" / "__init__.py").read_bytes()
        )
        _copy_tree(ROOT / "functions" / "aws", site / "functions" / "aws")
        _copy_tree(ROOT / "shipper", site / "shipper")
        zipped = out / "aws-lambda.zip"
        unzipped = write_zip(site, zipped)
    return zipped, zipped.stat().st_size, unzipped


def build_gcp(out: Path) -> tuple[Path, int]:
    gcp = out / "gcp"
    if gcp.exists():
        shutil.rmtree(gcp)  # dist/ is ours: rebuilt whole, never merged with an old build
    gcp.mkdir(parents=True)
    shutil.copyfile(ROOT / "functions" / "gcp" / "main.py", gcp / "main.py")
    _copy_tree(ROOT / "shipper", gcp / "shipper")
    reqs = requirements("gcp")
    header = "# binlog-shipper Cloud Function: runtime dependencies (make functions)\n"
    (gcp / "requirements.txt").write_text(header + "\n".join(reqs) + "\n")
    return gcp, sum(p.stat().st_size for p in _files(gcp))


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="build the function packages")
    ap.add_argument("--out", type=Path, default=ROOT / "dist" / "functions")
    ap.add_argument("--python-version", default="3.12", help="the Lambda runtime's Python")
    ap.add_argument(
        "--platform",
        default="manylinux2014_x86_64",
        help="wheel platform (manylinux2014_aarch64 for lambda_architecture = arm64)",
    )
    args = ap.parse_args(argv)
    try:
        zipped, zsize, usize = build_aws(args.out, args.python_version, args.platform)
        gcp, gsize = build_gcp(args.out)
    except (BuildError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{zipped}: {_mb(zsize)} zipped, {_mb(usize)} unzipped (limits 50 MB, 250 MB)")
    print(f"{gcp}/: {_mb(gsize)} (main.py, shipper/, requirements.txt)")
    if zsize > ZIP_LIMIT or usize > UNZIPPED_LIMIT:
        print(f"error: {zipped} is over the Lambda limits", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

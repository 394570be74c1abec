"""A host without Google credentials: file:// and s3:// targets never look for them; a
gs:// target that is actually used says which target and how to provide them.

Each command runs in a fresh process with an empty environment (no GOOGLE_* or
STORAGE_EMULATOR_HOST, HOME an empty directory), as on a host that never used GCP.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from shipper.keys.local import LocalKeyring
from tests.services.cloud import Moto

# Runs the CLI, then reports whether any Google auth code was even imported.
_PROBE = (
    "import sys\n"
    "from shipper.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "print('google-auth-loaded' if 'google.auth' in sys.modules else 'google-auth-untouched')\n"
    "sys.exit(rc)\n"
)


def _config(state: Path, targets: str, primary: str) -> None:
    state.mkdir(parents=True)
    LocalKeyring.create(state / "keyring")
    (state / "config.toml").write_text(
        f'tenant = "t"\nstate_dir = "{state}"\n[routing]\nprimary = "{primary}"\n'
        f"{targets}\n"
        f'[[keys]]\nprovider = "local"\npath = "{state}/keyring"\n'
    )


def _run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    p = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    return p.returncode, p.stdout, p.stderr


def test_file_and_s3_targets_never_touch_google_credentials(tmp_path: Path, moto: Moto) -> None:
    state = tmp_path / "state"
    bucket = moto.bucket()
    _config(
        state,
        f'[[targets]]\nurl = "file://{tmp_path}/archive"\n'
        f'[[targets]]\nurl = "s3://{bucket}/p"\nendpoint_url = "{moto.endpoint_url}"\n'
        f'region = "{moto.region}"\n'
        '[[targets]]\nurl = "gs://some-bucket/p"\n',
        "local",
    )
    aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    for source in ("", f"s3://{bucket}/p"):
        extra = ["--from", source] if source else []
        rc, out, err = _run(
            tmp_path, "fetch", "mysql-bin.000001", "-o", str(tmp_path / "o"),
            "--state-dir", str(state), *extra, env=aws,
        )  # fmt: skip
        assert rc == 4, err  # not archived yet: a clean "not found", nothing else
        assert "is not in the archive" in err
        assert "Traceback" not in err
        assert "google-auth-untouched" in out


def test_gs_target_without_credentials_says_how_to_provide_them(tmp_path: Path) -> None:
    state = tmp_path / "state"
    _config(state, '[[targets]]\nurl = "gs://some-bucket/archive"\n', "gcp")
    rc, _out, err = _run(
        tmp_path, "fetch", "mysql-bin.000001", "-o", str(tmp_path / "o"), "--state-dir", str(state)
    )
    assert rc == 8, err
    assert "Traceback" not in err
    assert "target gs://some-bucket/archive: no Google credentials found" in err
    assert "GOOGLE_APPLICATION_CREDENTIALS" in err and "STORAGE_EMULATOR_HOST" in err
    assert not (tmp_path / "o").exists()

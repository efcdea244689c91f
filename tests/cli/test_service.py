"""`modelyard service`: the unit it writes passes systemd's own check (systemd-analyze verify),
user and system; install writes it with the shell's other settings in an environment file only
its owner reads, and asks systemctl to enable and start it; when systemctl refuses, nothing it
wrote stays; uninstall stops it and removes both. systemctl is a stand-in that records what it
is asked (there is no systemd running in the tests)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from modelyard.config import Settings
from modelyard.service import Service, unit


def verify(text: str, folder: Path) -> subprocess.CompletedProcess[str]:
    path = folder / "modelyard.service"
    path.write_text(text)
    return subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True)


@pytest.mark.parametrize("system", [False, True])
def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path, system: bool) -> None:
    home = tmp_path / "a home with 100% of its spaces"
    settings = Settings(home=home, host="0.0.0.0", port=11999, insecure=True)
    service = Service.of(settings, system=system, user="root", config_home=tmp_path / "config")
    text = unit(service, settings)
    checked = verify(text, tmp_path)
    assert (checked.returncode, checked.stderr) == (0, "")
    assert 'Environment="MODELYARD_HOST=0.0.0.0"' in text
    assert 'Environment="MODELYARD_PORT=11999"' in text
    assert f'Environment="MODELYARD_HOME={str(home).replace("%", "%%")}"' in text
    assert 'Environment="MODELYARD_INSECURE=true"' in text
    assert ("User=root" in text, "WantedBy=multi-user.target" in text) == (system, system)
    # and a unit systemd would refuse is refused: the check can fail
    assert verify(text.replace("Restart=on-failure", "Restart=sometimes"), tmp_path).stderr


def run(
    tmp_path: Path, *args: str, refuse: bool = False, home: Path | None = None
) -> subprocess.CompletedProcess[str]:
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    systemctl = fake / "systemctl"
    systemctl.write_text(
        '#!/bin/sh\necho "$*" >> "$SYSTEMCTL_LOG"\n'
        + (
            '[ "$2" = enable ] && { echo "Failed to enable unit: Access denied" >&2; exit 1; }\n'
            if refuse
            else ""
        )
        + "exit 0\n"
    )
    systemctl.chmod(0o755)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")},
        "PATH": f"{fake}:{os.environ['PATH']}",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "MODELYARD_HOME": str(home or tmp_path / "home"),
        "MODELYARD_HF_TOKEN": 'hf_"secret"',
        "SYSTEMCTL_LOG": str(tmp_path / "systemctl.log"),
    }
    return subprocess.run(
        [sys.executable, "-m", "modelyard.cli.main", "service", *args],
        env=env,
        capture_output=True,
        text=True,
    )


def test_install_writes_the_unit_and_its_settings_then_starts_it(tmp_path: Path) -> None:
    done = run(tmp_path, "install", "--port", "11998")
    assert done.returncode == 0, done.stderr
    unit_path = tmp_path / "config" / "systemd" / "user" / "modelyard.service"
    assert 'Environment="MODELYARD_PORT=11998"' in unit_path.read_text()
    env_file = tmp_path / "home" / "service.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert env_file.read_text() == 'MODELYARD_HF_TOKEN="hf_\\"secret\\""\n'  # the home is in the unit
    log = (tmp_path / "systemctl.log").read_text().splitlines()
    assert log == ["--user daemon-reload", "--user enable --now modelyard.service"]
    assert "journalctl --user -u modelyard" in done.stdout

    again = run(tmp_path, "install")
    assert again.returncode == 1
    assert "exists" in again.stderr
    assert "service uninstall" in again.stderr

    gone = run(tmp_path, "uninstall", home=tmp_path / "another home")  # the unit says where its file is
    assert gone.returncode == 0, gone.stderr
    assert not unit_path.exists()
    assert not env_file.exists()
    assert (tmp_path / "systemctl.log").read_text().splitlines()[2:] == [
        "--user disable --now modelyard.service",
        "--user daemon-reload",
    ]


def test_a_refused_install_leaves_nothing_behind(tmp_path: Path) -> None:
    done = run(tmp_path, "install", refuse=True)
    assert done.returncode == 1
    assert "Access denied" in done.stderr
    assert not (tmp_path / "config" / "systemd" / "user" / "modelyard.service").exists()
    assert not (tmp_path / "home" / "service.env").exists()


def test_a_service_on_the_network_needs_a_key(tmp_path: Path) -> None:
    done = run(tmp_path, "install", "--host", "0.0.0.0")
    assert done.returncode == 1
    assert "without an API key" in done.stderr
    assert "modelyard keys create" in done.stderr
    assert not (tmp_path / "systemctl.log").exists()

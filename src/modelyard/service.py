"""modelyard as a systemd service (`modelyard service install`): a unit that runs `modelyard
serve` with the host, port and home it was installed with, restarts it when it fails, and
reads the rest of the MODELYARD_* settings of the shell that installed it from an environment
file only its owner can read (a database password, a hub token). A user unit by default
(~/.config/systemd/user, running while the user is logged in, or always with lingering); a
system unit with ``system`` (/etc/systemd/system, as a given user, started at boot).
"""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from modelyard.config import Settings
from modelyard.errors import ServiceError

NAME = "modelyard.service"
SYSTEM_UNITS = Path("/etc/systemd/system")
# what the unit sets itself; the environment file holds the other MODELYARD_* variables
IN_UNIT = ("MODELYARD_HOST", "MODELYARD_PORT", "MODELYARD_HOME", "MODELYARD_INSECURE")


@dataclass(frozen=True)
class Service:
    """Where the unit goes and what it runs."""

    system: bool
    unit_path: Path
    env_path: Path  # the other MODELYARD_* settings, mode 0600
    program: list[str]  # the command that runs modelyard
    user: str | None  # a system unit's user

    @classmethod
    def of(cls, settings: Settings, *, system: bool, user: str | None = None,
           config_home: Path | None = None) -> Service:  # fmt: skip
        if system:
            folder = SYSTEM_UNITS
            user = user or os.environ.get("SUDO_USER") or getpass.getuser()
        else:
            base = config_home or Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
            folder = base / "systemd" / "user"
            user = None
        return cls(system, folder / NAME, settings.home / "service.env", _program(), user)

    def systemctl(self, *args: str) -> list[str]:
        return ["systemctl", *([] if self.system else ["--user"]), *args]

    @property
    def logs(self) -> str:
        """The command that shows its log."""
        return f"journalctl {'' if self.system else '--user '}-u modelyard -f"


def _program() -> list[str]:
    """This modelyard: the command installed beside its interpreter, else the interpreter."""
    beside = Path(sys.executable).with_name("modelyard")
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    return [sys.executable, "-m", "modelyard.cli.main"]


def _quoted(value: str, *, in_unit: bool = True) -> str:
    """A value in double quotes as systemd reads it: in the unit (where % starts a specifier)
    or in an environment file."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped.replace("%", "%%") if in_unit else escaped}"'


def unit(service: Service, settings: Settings) -> str:
    """The unit's text."""
    env = {
        "MODELYARD_HOST": settings.host,
        "MODELYARD_PORT": str(settings.port),
        "MODELYARD_HOME": str(settings.home),
    }
    if settings.insecure:
        env["MODELYARD_INSECURE"] = "true"
    lines = [
        "[Unit]",
        "Description=modelyard: local AI models, served",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=exec",
        "ExecStart=" + " ".join(_quoted(part) for part in [*service.program, "serve"]),
        *(f"Environment={_quoted(f'{k}={v}')}" for k, v in env.items()),
        f"EnvironmentFile=-{service.env_path}",
        "Restart=on-failure",
        "RestartSec=5",
        # the engines' processes stop with the server: SIGTERM to it first (it stops them in
        # order), then to whatever is left
        "KillMode=mixed",
        f"TimeoutStopSec={int(settings.stop_grace) + 20}",
    ]
    if service.user is not None:
        lines.append(f"User={service.user}")
    target = "multi-user.target" if service.system else "default.target"
    lines += ["", "[Install]", f"WantedBy={target}", ""]
    return "\n".join(lines)


def environment_file(environ: Mapping[str, str]) -> str:
    """The MODELYARD_* settings of ``environ`` the unit does not set itself."""
    kept = sorted(
        (k, v) for k, v in environ.items() if k.upper().startswith("MODELYARD_") and k.upper() not in IN_UNIT
    )
    return "".join(f"{k}={_quoted(v, in_unit=False)}\n" for k, v in kept)


def install(service: Service, settings: Settings, environ: Mapping[str, str] = os.environ) -> None:
    """Write the unit and the environment file, and enable and start the service; when
    systemctl refuses, nothing written stays behind."""
    if service.unit_path.exists():
        raise ServiceError(
            f"{service.unit_path} exists",
            hint="`modelyard service uninstall` first (or remove it)",
        )
    settings.ensure_home()
    written: list[Path] = []
    try:
        service.unit_path.parent.mkdir(parents=True, exist_ok=True)
        service.unit_path.write_text(unit(service, settings))
        written.append(service.unit_path)
        if not service.env_path.exists():
            fd = os.open(service.env_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(environment_file(environ))
            written.append(service.env_path)
        _run(service.systemctl("daemon-reload"))
        _run(service.systemctl("enable", "--now", NAME))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        if written:
            subprocess.run(service.systemctl("daemon-reload"), capture_output=True, check=False)
        raise


def uninstall(service: Service) -> bool:
    """Stop and disable the service, and remove its unit and the environment file it names;
    whether there was one."""
    if not service.unit_path.exists():
        return False
    text = service.unit_path.read_text()
    subprocess.run(service.systemctl("disable", "--now", NAME), capture_output=True, check=False)
    service.unit_path.unlink()
    for line in text.splitlines():  # the unit's own, whatever MODELYARD_HOME says now
        if line.startswith("EnvironmentFile=-"):
            Path(line.removeprefix("EnvironmentFile=-")).unlink(missing_ok=True)
    subprocess.run(service.systemctl("daemon-reload"), capture_output=True, check=False)
    return True


def _run(argv: list[str]) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError as e:
        raise ServiceError(f"{argv[0]} cannot run: {e.strerror}", hint="this machine needs systemd") from e
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise ServiceError(
            f"`{' '.join(argv)}` failed: {said[-1] if said else f'exit status {done.returncode}'}",
            hint="is systemd running here? `modelyard service install --print` shows the unit to install by hand",
        )

"""The stored login: ``$XDG_CONFIG_HOME/microblog-tasks/credentials.json``, readable by its owner only."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from cli.errors import UNAVAILABLE, CliError

APP_DIR = "microblog-tasks"
FILE_NAME = "credentials.json"


@dataclass(frozen=True)
class Credentials:
    url: str
    username: str
    token: str
    expires_at: str

    def expired(self, now: datetime | None = None) -> bool:
        try:
            expires = datetime.fromisoformat(self.expires_at)
        except ValueError:
            return False  # the server decides; an unreadable date is not a reason to refuse
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        return expires <= (now or datetime.now(UTC))


def credentials_path(environ: Mapping[str, str] = os.environ) -> Path:
    base = environ.get("XDG_CONFIG_HOME", "")
    # The XDG spec says to ignore a relative value.
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".config"
    return root / APP_DIR / FILE_NAME


def load(path: Path) -> Credentials | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CliError(UNAVAILABLE, f"cannot read {path} ({exc}); run `microblog-tasks login`") from None
    fields = ("url", "username", "token", "expires_at")
    if not isinstance(data, dict) or not all(isinstance(data.get(f), str) for f in fields):
        raise CliError(UNAVAILABLE, f"{path} is not a login this client wrote; run `microblog-tasks login`")
    return Credentials(**{f: data[f] for f in fields})


def save(path: Path, credentials: Credentials) -> None:
    path.parent.parent.mkdir(parents=True, exist_ok=True)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    # mkdir's mode is masked by the umask, and the directory may predate this client.
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # Created 0600 from the first byte, then renamed over the old file: the token is never readable by others.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(asdict(credentials), f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def delete(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()

"""The token signing key: ``auth.secret``, or one generated on first start and kept in the data dir.

No secret ships with the code. With ``auth.secret`` empty, the first start writes 256 random bits to
``<server.data_dir>/auth.secret`` (mode 0600) and later starts read it back, so tokens survive a restart.
Processes that share the data dir share the key; elsewhere, copy the file's content into ``auth.secret``
(it is used verbatim either way). Creation is atomic (write a private temp file, then hard-link it into
place), so two processes starting at once end up with the same key.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from gameserver.config import MIN_SECRET_BYTES, AuthConfig
from gameserver.errors import ConfigError

log = logging.getLogger("gameserver.features.identity")

SECRET_FILE = "auth.secret"
GENERATED_BYTES = 32


def load_secret(config: AuthConfig, data_dir: Path) -> bytes:
    """The HS256 key: the configured one, else the data dir's (created if missing).

    Raises:
        ConfigError: the key is shorter than 32 bytes, or the secret file cannot be read or written.
    """
    if config.secret:
        return _checked(config.secret, "auth.secret")
    path = data_dir / SECRET_FILE
    try:
        if not path.exists():
            _create(path)
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("%s is readable by other users (mode %o); chmod 600 it", path, mode)
        return _checked(path.read_text(encoding="ascii").strip(), str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"auth.secret: cannot use the generated secret {path}: {exc}") from None


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_urlsafe(GENERATED_BYTES) + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
            log.info("generated a token secret in %s", path)
        except FileExistsError:
            pass  # another process won the race: use its key
    finally:
        tmp.unlink(missing_ok=True)


def _checked(secret: str, source: str) -> bytes:
    key = secret.encode()
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"{source}: a token secret must be at least {MIN_SECRET_BYTES} bytes (256 bits), got {len(key)}"
        )
    return key

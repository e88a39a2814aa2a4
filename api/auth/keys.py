"""Token signing keys from settings: an HS256 secret, or an RS256/EdDSA/ES256 key pair from PEM files.

Kept apart from `tokens` so that the choice of algorithm is made once, at start, with messages an operator can act on
(a missing key file, a short secret) instead of failing on the first login.
"""

from __future__ import annotations

from pathlib import Path

from odin.api.auth.tokens import TokenKeys, load_or_create_secret
from odin.controller.settings import Settings


class KeyConfigError(ValueError):
    """The configured JWT keys cannot be used; the message names the setting to fix."""


def token_keys(settings: Settings) -> TokenKeys:
    """HS256 from ODIN_JWT_SECRET, ODIN_JWT_SECRET_FILE or a secret generated once in the data directory; or an
    asymmetric algorithm (ODIN_JWT_ALGORITHM) with ODIN_JWT_PRIVATE_KEY_FILE and ODIN_JWT_PUBLIC_KEY_FILE."""
    try:
        if settings.jwt_algorithm != "HS256":
            if settings.jwt_private_key_file is None or settings.jwt_public_key_file is None:
                raise KeyConfigError(
                    f"ODIN_JWT_ALGORITHM={settings.jwt_algorithm} needs ODIN_JWT_PRIVATE_KEY_FILE and "
                    "ODIN_JWT_PUBLIC_KEY_FILE (PEM files)"
                )
            return TokenKeys.from_pem(
                settings.jwt_algorithm,
                Path(settings.jwt_private_key_file).read_bytes(),
                Path(settings.jwt_public_key_file).read_bytes(),
            )
        if settings.jwt_secret is not None:
            return TokenKeys.hs256(settings.jwt_secret.get_secret_value().encode())
        if settings.jwt_secret_file is not None:
            return TokenKeys.hs256(Path(settings.jwt_secret_file).read_bytes().strip())
        return TokenKeys.hs256(load_or_create_secret(settings.data_dir / "jwt-secret"))
    except KeyConfigError:
        raise
    except OSError as e:
        raise KeyConfigError(f"cannot read a JWT key file: {e.strerror} ({e.filename})") from e
    except (ValueError, TypeError) as e:
        # Messages from `cryptography` describe the key's format, never its content.
        raise KeyConfigError(f"unusable JWT key for {settings.jwt_algorithm}: {e}") from e

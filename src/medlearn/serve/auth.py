"""Bearer tokens for the inference service, read from a file only the service's user can read.

A token is a line of at least :data:`MIN_LENGTH` characters (``python -c "import secrets;
print(secrets.token_urlsafe(32))"`` makes one); blank lines and ``#`` comments are ignored. Requests are compared
against every token in constant time, and the audit log names a token by a short digest, never by its value.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from medlearn.errors import MedlearnError

MIN_LENGTH = 32


@dataclass(frozen=True)
class TokenStore:
    tokens: tuple[str, ...]

    @classmethod
    def from_file(cls, path: str | Path) -> TokenStore:
        path = Path(path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise MedlearnError(f"cannot read the token file ({error.strerror})", path) from None
        tokens = tuple(line.strip() for line in lines if line.strip() and not line.strip().startswith("#"))
        if not tokens:
            raise MedlearnError("the token file holds no token: the service never runs without authentication", path)
        short = [i for i, token in enumerate(tokens, start=1) if len(token) < MIN_LENGTH]
        if short:
            raise MedlearnError(f"token {short[0]} is shorter than {MIN_LENGTH} characters: too easy to guess", path)
        if os.name == "posix" and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise MedlearnError("the token file can be read by other users: chmod 600 it", path)
        return cls(tokens)

    def identify(self, authorization: str | None) -> str | None:
        """The short digest naming the token of an ``Authorization: Bearer <token>`` header, or None."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        given = authorization.removeprefix("Bearer ").strip().encode()
        found = None
        for token in self.tokens:  # every token compared, in constant time: no timing hint of a near miss
            if hmac.compare_digest(given, token.encode()):
                found = token
        return hashlib.sha256(found.encode()).hexdigest()[:8] if found else None

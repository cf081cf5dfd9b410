"""Kore.ai's JWT app authentication, as its JWT pages describe it.

A token is sent in a header literally named ``auth``. It must be HS256-signed with the app's Client
Secret and carry ``{"appId": <Client ID>}`` (compared as strings: a numeric appId does not match even if
its digits do). An app may enforce JTI: then every token carries ``jti``, ``iat`` and ``exp`` (at most
an hour after ``iat``) and no ``jti`` is accepted twice. Every refusal is a 401 with one of the messages
below.
"""

from __future__ import annotations

import threading
import time
import uuid

import jwt

INVALID_TOKEN = "Invalid or expired token"
MAX_JTI_TOKEN_LIFETIME_SECONDS = 3600
TOKEN_LIFETIME_SECONDS = 3600


class JtiRegistry:
    """Every jti accepted so far, for apps that enforce JTI; thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._used: set[str] = set()

    def claim(self, jti: str) -> bool:
        """True the first time `jti` is seen, False ever after."""
        with self._lock:
            if jti in self._used:
                return False
            self._used.add(jti)
            return True


def authentication_problem(
    token: str | None, *, client_id: str, client_secret: str, jtis: JtiRegistry | None
) -> str | None:
    """Why `token` is refused (the 401's message), or None when it is accepted; `jtis` None: no JTI rule."""
    if not token:
        return INVALID_TOKEN
    try:
        claims = jwt.decode(token, client_secret, algorithms=["HS256"])
    except jwt.PyJWTError:
        return INVALID_TOKEN
    if not isinstance(claims.get("appId"), str) or claims["appId"] != client_id:
        return INVALID_TOKEN
    if jtis is None:
        return None
    if not all(name in claims for name in ("jti", "iat", "exp")):
        return "Token must carry jti, iat and exp"
    if claims["exp"] - claims["iat"] > MAX_JTI_TOKEN_LIFETIME_SECONDS:
        return "Token lifetime exceeds one hour"
    if not jtis.claim(claims["jti"]):
        return "jti already used"
    return None


def unverified_claims(token: str | None) -> dict | None:
    """The token's payload as sent, signature unchecked (for the request log), or None."""
    try:
        return jwt.decode(token, options={"verify_signature": False}) if token else None
    except jwt.PyJWTError:
        return None


def mint_token(client_id: str, client_secret: str, **claims_overrides) -> str:
    """A valid HS256 token with a fresh jti; an override of None removes that claim."""
    now = int(time.time())
    claims = {"appId": client_id, "iat": now, "exp": now + TOKEN_LIFETIME_SECONDS, "jti": str(uuid.uuid4())}
    claims.update(claims_overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, client_secret, algorithm="HS256")

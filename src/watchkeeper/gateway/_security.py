"""Bearer tokens with two scopes: ``predict`` and ``admin``, and dashboard sessions.

Only sha256 digests of the tokens are kept after start-up (the app's settings keep none), and
every presented token is compared with every digest in constant time, so neither timing nor a
memory dump tells which token is close. Tokens never appear in messages or logs.

A dashboard login exchanges a token for a session value: the scope and an expiry time,
signed with HMAC-SHA256 under a key derived from the configured tokens' digests (so every
worker of one server accepts it, and changing the tokens ends every session). The value holds
neither the token nor its digest; a forged, altered or expired value is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable
from typing import Literal

from watchkeeper.gateway._errors import ApiError, FieldProblem

__all__ = ["SESSION_SECONDS", "Scope", "TokenAuth"]

#: Lifetime of a dashboard session.
SESSION_SECONDS = 8 * 3600

Scope = Literal["predict", "admin"]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="watchkeeper"'}


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenAuth:
    """Checks ``Authorization: Bearer ...`` headers against the configured tokens.

    Parameters
    ----------
    predict_tokens, admin_tokens
        Tokens of each scope.
    required
        When ``False`` every request passes (loopback development setups).

    Examples
    --------
    >>> auth = TokenAuth(["p" * 20], ["a" * 20], required=True)
    >>> auth.check("Bearer " + "p" * 20, "predict")
    >>> auth.check("Bearer " + "p" * 20, "admin")
    Traceback (most recent call last):
    ...
    watchkeeper.gateway._errors.ApiError: this token does not grant the 'admin' scope
    >>> auth.check(None, "predict")
    Traceback (most recent call last):
    ...
    watchkeeper.gateway._errors.ApiError: authentication required
    """

    def __init__(
        self, predict_tokens: Iterable[str], admin_tokens: Iterable[str], *, required: bool
    ) -> None:
        self.required = required
        self._scopes: dict[str, tuple[bytes, ...]] = {
            "predict": tuple(_digest(t) for t in predict_tokens),
            "admin": tuple(_digest(t) for t in admin_tokens),
        }

    @property
    def _session_key(self) -> bytes:
        material = b"".join(d for scope in ("predict", "admin") for d in self._scopes[scope])
        return hmac.new(b"watchkeeper dashboard session v1", material, hashlib.sha256).digest()

    def scope_of(self, token: str) -> Scope | None:
        """``admin`` or ``predict`` for a configured token (admin first), else ``None``."""
        digest = _digest(token)
        if self._matches(digest, "admin"):
            return "admin"
        if self._matches(digest, "predict"):
            return "predict"
        return None

    def issue_session(self, scope: Scope, *, now: float | None = None) -> str:
        """A signed session value for ``scope``, valid :data:`SESSION_SECONDS`.

        Examples
        --------
        >>> auth = TokenAuth(["p" * 20], [], required=True)
        >>> value = auth.issue_session("predict", now=1000.0)
        >>> auth.check_session(value, now=1001.0)
        'predict'
        >>> auth.check_session(value, now=1000.0 + SESSION_SECONDS + 1) is None
        True
        >>> auth.check_session(value[:-2] + "AA", now=1001.0) is None
        True
        """
        issued = time.time() if now is None else now
        payload = json.dumps(
            {"s": scope, "e": int(issued + SESSION_SECONDS), "n": secrets.token_urlsafe(12)},
            separators=(",", ":"),
        ).encode()
        signature = hmac.new(self._session_key, payload, hashlib.sha256).digest()
        return f"{_b64(payload)}.{_b64(signature)}"

    def check_session(self, value: str, *, now: float | None = None) -> Scope | None:
        """The scope of a valid, unexpired session value; ``None`` otherwise."""
        payload_text, _, signature_text = value.partition(".")
        try:
            payload = _unb64(payload_text)
            signature = _unb64(signature_text)
        except ValueError:
            return None
        expected = hmac.new(self._session_key, payload, hashlib.sha256).digest()
        if not hmac.compare_digest(signature, expected):
            return None
        try:
            fields = json.loads(payload)
            scope, expires = fields["s"], float(fields["e"])
        except (ValueError, KeyError, TypeError):
            return None
        current = time.time() if now is None else now
        if scope not in ("predict", "admin") or not current < expires:
            return None
        return scope  # type: ignore[no-any-return]

    def _matches(self, digest: bytes, scope: str) -> bool:
        found = False
        for known in self._scopes[scope]:
            # No early exit: the time taken does not depend on which token matched.
            found |= hmac.compare_digest(digest, known)
        return found

    def check(self, authorization: str | None, scope: Scope) -> None:
        """Pass, or raise :class:`ApiError` 401 (no or unknown token) / 403 (wrong scope)."""
        if not self.required:
            return
        if not authorization:
            raise ApiError(
                "authentication required",
                [
                    FieldProblem(
                        "header.authorization", f"send 'Authorization: Bearer <{scope} token>'"
                    )
                ],
                status=401,
                headers=_CHALLENGE,
            )
        kind, _, token = authorization.partition(" ")
        token = token.strip()
        if kind.lower() != "bearer" or not token:
            raise ApiError(
                "authentication required",
                [FieldProblem("header.authorization", "expected the form 'Bearer <token>'")],
                status=401,
                headers=_CHALLENGE,
            )
        digest = _digest(token)
        if self._matches(digest, scope):
            return
        other = "admin" if scope == "predict" else "predict"
        if self._matches(digest, other):
            raise ApiError(
                f"this token does not grant the {scope!r} scope",
                [FieldProblem("header.authorization", f"use a token listed under {scope!r}")],
                status=403,
            )
        raise ApiError(
            "invalid bearer token",
            [FieldProblem("header.authorization", "the token is not one of the configured tokens")],
            status=401,
            headers=_CHALLENGE,
        )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    if not text or len(text) > 4096:
        raise ValueError("empty or too long")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None

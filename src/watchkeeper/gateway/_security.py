"""Bearer tokens with two scopes: ``predict`` and ``admin``.

Only sha256 digests of the tokens are kept after start-up, and every presented token is
compared with every digest in constant time, so neither timing nor a memory dump of the
settings object tells which token is close. Tokens never appear in messages or logs.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Literal

from watchkeeper.gateway._errors import ApiError, FieldProblem

__all__ = ["Scope", "TokenAuth"]

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

"""Validation of model names, aliases and version references.

Names end up in file paths of exports and in URLs of the gateway, so they are checked once
here against a conservative whitelist instead of being escaped at every use.
"""

from __future__ import annotations

import re

from watchkeeper.registry._errors import InvalidNameError

__all__ = ["LATEST", "parse_ref", "validate_alias", "validate_name"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Aliases start with a letter so that "3" is always a version and never an alias.
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,63}")

#: Pseudo-alias resolving to the highest live version; it cannot be set.
LATEST = "latest"


def validate_name(name: object) -> str:
    """Return ``name`` if it is a valid model name, else raise :class:`InvalidNameError`.

    A name is 1-128 characters from ``A-Z a-z 0-9 . _ -``, starts with a letter or digit and
    contains no ``..``.

    Examples
    --------
    >>> validate_name("churn-model_v2.1")
    'churn-model_v2.1'
    >>> validate_name("../etc/passwd")
    Traceback (most recent call last):
    ...
    watchkeeper.registry._errors.InvalidNameError: invalid model name '../etc/passwd': ...
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise InvalidNameError(
            f"invalid model name {name!r}: use 1-128 characters from letters, digits, "
            "'.', '_' and '-', starting with a letter or digit (no path separators, "
            "spaces, quotes or '..')"
        )
    return name


def validate_alias(alias: object) -> str:
    """Return ``alias`` if it is a valid alias name, else raise :class:`InvalidNameError`.

    An alias is 1-64 characters from ``A-Z a-z 0-9 . _ -`` starting with a letter;
    ``latest`` is reserved.

    Examples
    --------
    >>> validate_alias("champion")
    'champion'
    >>> validate_alias("2")
    Traceback (most recent call last):
    ...
    watchkeeper.registry._errors.InvalidNameError: invalid alias '2': ...
    """
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias) or ".." in alias:
        raise InvalidNameError(
            f"invalid alias {alias!r}: use 1-64 characters from letters, digits, '.', '_' "
            "and '-', starting with a letter (e.g. 'champion', 'challenger')"
        )
    if alias == LATEST:
        raise InvalidNameError(
            "'latest' is reserved: it always means the highest live version; pick another alias"
        )
    return alias


def parse_ref(ref: int | str) -> int | str:
    """Turn a version-or-alias reference into a version number or a validated alias.

    Examples
    --------
    >>> parse_ref("3"), parse_ref(3), parse_ref("champion"), parse_ref("latest")
    (3, 3, 'champion', 'latest')
    """
    if isinstance(ref, bool):
        raise InvalidNameError(f"invalid version {ref!r}: pass a version number or an alias")
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isascii() and ref.isdigit()):
        version = int(ref)
        if version < 1:
            raise InvalidNameError(f"invalid version {ref!r}: versions start at 1")
        return version
    if ref == LATEST:
        return LATEST
    return validate_alias(ref)

from __future__ import annotations

import pytest

from watchkeeper.exceptions import InputError
from watchkeeper.registry import InvalidNameError, validate_alias, validate_name
from watchkeeper.registry._names import parse_ref

BAD_NAMES = [
    "",
    "../evil",
    "a/b",
    "a\\b",
    "..",
    "a..b",
    ".hidden",
    "-flag",
    "a b",
    "x'; DROP TABLE wk_model_versions; --",
    'quote"d',
    "semi;colon",
    "percent%",
    "nul\x00byte",
    "new\nline",
    "é",
    "a" * 129,
    None,
    3,
]


@pytest.mark.parametrize("name", ["m", "churn-model_v2.1", "A", "9lives", "a" * 128])
def test_valid_names_pass(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_refused_with_an_input_error(name: object) -> None:
    with pytest.raises(InvalidNameError, match="invalid model name") as info:
        validate_name(name)
    assert isinstance(info.value, InputError)


@pytest.mark.parametrize("alias", ["2", "9x", "latest", "a/b", "", "x'--", "a" * 65])
def test_bad_aliases_are_refused(alias: str) -> None:
    with pytest.raises(InvalidNameError):
        validate_alias(alias)


@pytest.mark.parametrize(
    ("ref", "expected"),
    [(1, 1), ("12", 12), ("champion", "champion"), ("latest", "latest")],
)
def test_parse_ref(ref: int | str, expected: int | str) -> None:
    assert parse_ref(ref) == expected


@pytest.mark.parametrize("ref", [0, -1, "0", True, "²", "a/b"])
def test_parse_ref_refuses_nonsense(ref: object) -> None:
    with pytest.raises(InvalidNameError):
        parse_ref(ref)  # type: ignore[arg-type]

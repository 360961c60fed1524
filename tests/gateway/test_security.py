"""Tokens: two separate scopes, required off loopback, read from env or a file, never
echoed; the HTTP endpoints enforce them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from watchkeeper.exceptions import InputError
from watchkeeper.gateway import ApiError, GatewayConfig
from watchkeeper.gateway._security import TokenAuth
from watchkeeper.gateway._settings import read_tokens_file

from ._apps import churn_record, fresh_root, gateway

PREDICT = "predict-token-0123456789abcdef"
ADMIN = "admin-token-0123456789abcdef"


def _status(auth: TokenAuth, header: str | None, scope: str) -> int:
    try:
        auth.check(header, scope)  # type: ignore[arg-type]
    except ApiError as exc:
        return exc.status
    return 200


def test_scopes_are_separate() -> None:
    auth = TokenAuth([PREDICT], [ADMIN], required=True)
    assert _status(auth, f"Bearer {PREDICT}", "predict") == 200
    assert _status(auth, f"bearer {ADMIN}", "admin") == 200
    assert _status(auth, f"Bearer {PREDICT}", "admin") == 403
    assert _status(auth, f"Bearer {ADMIN}", "predict") == 403
    assert _status(auth, "Bearer someone-elses-token-xxxxxxxx", "predict") == 401
    assert _status(auth, None, "predict") == 401
    assert _status(auth, f"Basic {PREDICT}", "predict") == 401
    assert _status(auth, "Bearer ", "predict") == 401


def test_not_required_lets_everything_through() -> None:
    auth = TokenAuth([], [], required=False)
    assert _status(auth, None, "admin") == 200


def test_401_carries_a_bearer_challenge_and_never_the_token() -> None:
    auth = TokenAuth([PREDICT], [], required=True)
    with pytest.raises(ApiError) as info:
        auth.check("Bearer wrong-token-wrong-token", "predict")
    assert info.value.headers["WWW-Authenticate"].startswith("Bearer")
    assert "wrong-token" not in str(info.value.to_dict())


@pytest.mark.parametrize(
    ("host", "tokens", "forced", "required"),
    [
        ("127.0.0.1", (), None, False),
        ("localhost", (), None, False),
        ("::1", (), None, False),
        ("0.0.0.0", (), None, True),
        ("10.1.2.3", (), None, True),
        ("127.0.0.1", (PREDICT,), None, True),  # configured tokens are always enforced
        ("0.0.0.0", (), False, False),
    ],
)
def test_auth_required_by_bind_address(
    host: str, tokens: tuple[str, ...], forced: bool | None, required: bool
) -> None:
    settings = GatewayConfig(host=host, predict_tokens=tokens, require_auth=forced)
    assert settings.auth_required is required


def test_an_open_public_gateway_refuses_to_start() -> None:
    with pytest.raises(InputError, match="--no-auth"):
        GatewayConfig(host="0.0.0.0").check_startable()
    GatewayConfig(host="0.0.0.0", admin_tokens=(ADMIN,)).check_startable()
    GatewayConfig(host="0.0.0.0", require_auth=False).check_startable()


def test_tokens_from_env_and_file(tmp_path: Path) -> None:
    file = tmp_path / "tokens"
    file.write_text(f"# team tokens\npredict {PREDICT}\n\nadmin {ADMIN}  # ops\n")
    env = {
        "WATCHKEEPER_PREDICT_TOKENS": "env-token-aaaaaaaaaaaa",
        "WATCHKEEPER_TOKENS_FILE": str(file),
    }
    settings = GatewayConfig.from_env(env)
    assert settings.predict_tokens == ("env-token-aaaaaaaaaaaa", PREDICT)
    assert settings.admin_tokens == (ADMIN,)
    assert PREDICT not in repr(settings)
    assert ADMIN not in repr(settings)


def test_bad_tokens_are_refused_without_being_echoed(tmp_path: Path) -> None:
    with pytest.raises(InputError) as short:
        GatewayConfig(predict_tokens=("short",))
    assert "short" not in str(short.value).replace("shorter", "")
    file = tmp_path / "tokens"
    file.write_text(f"superuser {ADMIN}\n")
    with pytest.raises(InputError) as bad_line:
        read_tokens_file(file)
    assert ADMIN not in str(bad_line.value)
    assert ":1:" in str(bad_line.value)
    with pytest.raises(InputError, match="cannot read the tokens file"):
        read_tokens_file(tmp_path / "missing")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WATCHKEEPER_GATEWAY_PORT": "http"}, "is not a valid int"),
        ({"WATCHKEEPER_GATEWAY_REQUIRE_AUTH": "maybe"}, "is not a valid bool"),
        ({"WATCHKEEPER_GATEWAY_UNKNOWN_FIELDS": "drop"}, "unknown_fields must be"),
        ({"WATCHKEEPER_GATEWAY_MODELS": "ok,../etc"}, "invalid model name"),
        ({"WATCHKEEPER_GATEWAY_MAX_BATCH": "0"}, "max_batch must be at least 1"),
    ],
)
def test_invalid_settings_from_env(env: dict[str, str], message: str) -> None:
    with pytest.raises(InputError) as info:
        GatewayConfig.from_env(env)
    assert message in str(info.value)


@pytest.fixture
def root(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fresh_root(tmp_path, tmp_path_factory.getbasetemp())


@pytest.mark.anyio
async def test_endpoints_enforce_scopes(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    predict = {"Authorization": f"Bearer {PREDICT}"}
    admin = {"Authorization": f"Bearer {ADMIN}"}
    async with gateway(root, predict_tokens=(PREDICT,), admin_tokens=(ADMIN,)) as client:
        anonymous = await client.post("/v1/models/churn/predict", json=churn_record())
        allowed = await client.post(
            "/v1/models/churn/predict", json=churn_record(), headers=predict
        )
        wrong_scope = await client.post(
            "/v1/models/churn/predict", json=churn_record(), headers=admin
        )
        admin_by_predict = await client.post("/v1/admin/reload", headers=predict)
        admin_ok = await client.post("/v1/admin/reload", headers=admin)
        listing = await client.get("/v1/models")
        v2 = await client.post("/v2/models/churn/infer", json={"inputs": []})
        open_endpoints = [
            (await client.get(path)).status_code
            for path in ("/healthz", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready")
        ]
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert allowed.status_code == 200
    assert wrong_scope.status_code == 403
    assert admin_by_predict.status_code == 403
    assert admin_ok.status_code == 200
    assert listing.status_code == 401
    assert v2.status_code == 401
    assert open_endpoints == [200, 200, 200, 200, 200]
    assert PREDICT not in caplog.text
    assert ADMIN not in caplog.text


@pytest.mark.anyio
async def test_loopback_without_tokens_needs_none(root: Path) -> None:
    async with gateway(root) as client:
        resp = await client.post("/v1/admin/reload")
    assert resp.status_code == 200

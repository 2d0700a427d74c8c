"""Add a key and decrypt it through both real servers."""

from __future__ import annotations

import pickle
import secrets
import string

import pytest

from splitkey.errors import NotFoundError, TransportError

ALNUM = string.ascii_letters + string.digits


def _key(provider: str) -> str:
    random_part = "".join(secrets.choice(ALNUM) for _ in range(48))
    return {
        "openai": f"sk-proj-TESTONLY-{random_part}",
        "anthropic": f"sk-ant-api03-TESTONLY{random_part}",
        "google": "AIza" + random_part[:35],
        "openrouter": "sk-or-v1-" + secrets.token_hex(32),
    }[provider]


@pytest.mark.parametrize("provider", ["openai", "anthropic", "google", "openrouter"])
def test_round_trip_each_provider(app, worker, provider):
    api_key = _key(provider)
    added = app.add_key("ws-providers", provider, api_key)
    with worker.use_key("ws-providers", f"{provider}/some-model") as decrypted:
        assert decrypted.reveal() == api_key
        assert decrypted.provider == provider
        assert decrypted.record_id == added.record_id


def test_many_keys_across_workspaces(app, worker):
    stored = {}
    for index in range(30):
        workspace = f"ws-{index:04d}"
        for provider in ("openai", "anthropic"):
            stored[(workspace, provider)] = _key(provider)
            app.add_key(workspace, provider, stored[(workspace, provider)])
    for (workspace, provider), api_key in stored.items():
        with worker.use_key(workspace, provider) as decrypted:
            assert decrypted.reveal() == api_key, f"{workspace}/{provider} decrypted to another key"


def test_replace_makes_new_record(app, worker):
    first = app.add_key("ws-replace", "openai", _key("openai"))
    second_key = _key("openai")
    second = app.add_key("ws-replace", "openai", second_key)
    assert second.record_id != first.record_id
    assert second.replaced_record_id == first.record_id
    statuses = {info.record_id: info.status for info in app.list_keys("ws-replace")}
    assert statuses == {first.record_id: "replaced", second.record_id: "active"}
    with worker.use_key("ws-replace", "openai") as decrypted:
        assert decrypted.reveal() == second_key


def test_list_shows_masked_key_only(app):
    api_key = _key("openai")
    app.add_key("ws-list", "openai", api_key)
    (info,) = app.list_keys("ws-list")
    assert info.key_hint == f"{api_key[:4]}…{api_key[-4:]}"
    assert api_key not in str(info)


def test_decrypted_key_is_redacted(app, worker):
    api_key = _key("google")
    app.add_key("ws-redact", "google", api_key)
    with worker.use_key("ws-redact", "google") as decrypted:
        assert api_key not in repr(decrypted)
        assert api_key not in str(decrypted)
        assert api_key not in f"{decrypted}"
        assert repr(decrypted).endswith(f"{api_key[:4]}…{api_key[-4:]}>")
        with pytest.raises(TypeError):
            pickle.dumps(decrypted)


def test_unknown_workspace_not_found(worker):
    with pytest.raises(NotFoundError, match="ws-nobody"):
        worker.decrypt("ws-nobody", "openai")


def test_client_repr_holds_no_private_key(deployment, worker):
    private_key = (deployment.root / "clients" / "worker" / "keystore.key").read_text()
    body = "".join(private_key.splitlines()[1:-1])
    for text in (repr(worker), repr(worker.config), str(worker.config)):
        assert body[:16] not in text


def test_secret_server_down_means_no_key(deployment, app, tmp_path):
    """The keystore alone cannot produce a key: with the secret server stopped, decryption fails."""
    api_key = _key("openai")
    app.add_key("ws-halves", "openai", api_key)
    deployment.secret.stop()
    try:
        with deployment.client("worker") as worker:
            with pytest.raises(TransportError):
                worker.decrypt("ws-halves", "openai")
    finally:
        deployment.secret.start()
    with deployment.client("worker") as worker:
        assert worker.decrypt("ws-halves", "openai").reveal() == api_key


def test_model_provider_case_insensitive(app, worker):
    api_key = _key("openai")
    app.add_key("ws-case", "openai", api_key)
    with worker.use_key("ws-case", "OpenAI/gpt-4o") as decrypted:
        assert decrypted.reveal() == api_key


def test_unreachable_server_error_says_what_to_check(deployment, tmp_path):
    import tomllib

    import tomli_w

    from client import KeyClient

    source = deployment.client_config("worker")
    config = tomllib.loads(source.read_text())
    for table in ("keystore", "secret"):
        for name in ("cert", "key", "ca"):
            config[table][name] = str((source.parent / config[table][name]).resolve())
    config["keystore"]["address"] = "127.0.0.1:1"
    config["retry"] = {"max_attempts": 1}
    path = tmp_path / "client-worker-unreachable.toml"
    path.write_text(tomli_w.dumps(config))
    with KeyClient.from_config(path, harden=False) as worker:
        with pytest.raises(TransportError) as caught:
            worker.decrypt("ws-anything", "openai")
    assert "127.0.0.1:1" in str(caught.value)
    assert "check that the server is running" in str(caught.value)

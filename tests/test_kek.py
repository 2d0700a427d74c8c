"""Sealed KEK keyrings: sealing, authentication, versions and the init-kek command."""

from __future__ import annotations

import argparse
import base64
import copy
import json
import os
import pickle
import stat
import threading
import traceback

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from client.cli.kek_commands import register_init_kek
from splitkey import kek
from splitkey.errors import ConfigError, KeyVersionError, PreconditionError

FAST = kek.Argon2Params(time_cost=1, memory_cost=8, parallelism=1)
PASSPHRASE = b"correct horse battery staple"
UNSEAL_MESSAGE = "wrong passphrase or corrupted file"


@pytest.fixture
def keyring_path(tmp_path):
    path = tmp_path / "kek-a.keyring.json"
    kek.create_keyring(path, "kek-a", "splitkey.test", PASSPHRASE, argon2_params=FAST)
    return path


def _document(path):
    return json.loads(path.read_text())


def _write_document(path, document):
    path.write_text(json.dumps(document))


def _entry(document, version):
    return next(item for item in document["versions"] if item["version"] == version)


def _flip_first_byte(text):
    raw = bytearray(base64.b64decode(text))
    raw[0] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _clear_forms(key):
    """Return the encodings under which a leaked key could appear in a text file."""
    return [
        key.hex(),
        key.hex().upper(),
        base64.b64encode(key).decode(),
        base64.urlsafe_b64encode(key).decode(),
        base64.b64encode(key).decode().rstrip("="),
        base64.b32encode(key).decode().rstrip("="),
    ]


def _assert_unchained(error):
    """Check that a traceback of `error` would show no earlier exception."""
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    text = "".join(traceback.format_exception(error))
    assert "During handling" not in text
    assert "InvalidTag" not in text


def test_round_trip_fast_params(keyring_path):
    first = kek.load_keyring(keyring_path, PASSPHRASE)
    second = kek.load_keyring(keyring_path, PASSPHRASE)

    assert first.purpose == "kek-a"
    assert first.deployment == "splitkey.test"
    assert first.active_version == 1
    assert first.states() == {1: "active"}
    assert len(first.key(1)) == 32
    assert first.key(1) == second.key(1)


def test_round_trip_default_params(tmp_path):
    path = tmp_path / "kek-b.keyring.json"
    kek.create_keyring(path, "kek-b", "splitkey.test", PASSPHRASE)

    kdf = _document(path)["kdf"]
    assert kdf["algorithm"] == "argon2id"
    assert kdf["time_cost"] == 3
    assert kdf["memory_cost"] == 65536
    assert kdf["parallelism"] == 1
    keyring = kek.load_keyring(path, PASSPHRASE)
    assert keyring.purpose == "kek-b"
    assert len(keyring.key(1)) == 32


def test_two_keyrings_have_different_keys(tmp_path):
    kek.create_keyring(tmp_path / "a.json", "kek-a", "splitkey.test", PASSPHRASE, argon2_params=FAST)
    kek.create_keyring(tmp_path / "b.json", "kek-a", "splitkey.test", PASSPHRASE, argon2_params=FAST)

    first = kek.load_keyring(tmp_path / "a.json", PASSPHRASE)
    second = kek.load_keyring(tmp_path / "b.json", PASSPHRASE)
    assert first.key(1) != second.key(1)


def test_wrong_passphrase_rejected(keyring_path):
    with pytest.raises(ConfigError) as caught:
        kek.load_keyring(keyring_path, b"not the passphrase")

    assert str(caught.value) == f"cannot unseal {keyring_path}: {UNSEAL_MESSAGE}"
    _assert_unchained(caught.value)


def test_empty_passphrase_rejected(keyring_path, tmp_path):
    with pytest.raises(ConfigError, match="empty"):
        kek.load_keyring(keyring_path, b"")
    with pytest.raises(ConfigError, match="empty"):
        kek.create_keyring(tmp_path / "other.json", "kek-a", "splitkey.test", b"", argon2_params=FAST)


def test_tampered_sealed_blob_rejected(keyring_path):
    document = _document(keyring_path)
    entry = _entry(document, 1)
    entry["sealed"] = _flip_first_byte(entry["sealed"])
    _write_document(keyring_path, document)

    with pytest.raises(ConfigError, match=UNSEAL_MESSAGE) as caught:
        kek.load_keyring(keyring_path, PASSPHRASE)
    _assert_unchained(caught.value)


def test_tampered_nonce_rejected(keyring_path):
    document = _document(keyring_path)
    entry = _entry(document, 1)
    entry["nonce"] = _flip_first_byte(entry["nonce"])
    _write_document(keyring_path, document)

    with pytest.raises(ConfigError, match=UNSEAL_MESSAGE):
        kek.load_keyring(keyring_path, PASSPHRASE)


def test_blob_moved_to_other_version_rejected(keyring_path):
    kek.add_version(keyring_path, PASSPHRASE)
    kek.load_keyring(keyring_path, PASSPHRASE)  # control: the untouched file opens

    # The MAC covers version numbers and states but not the blobs, so only
    # the AAD of each blob can catch this swap.
    document = _document(keyring_path)
    first, second = _entry(document, 1), _entry(document, 2)
    first["nonce"], second["nonce"] = second["nonce"], first["nonce"]
    first["sealed"], second["sealed"] = second["sealed"], first["sealed"]
    _write_document(keyring_path, document)

    with pytest.raises(ConfigError, match=UNSEAL_MESSAGE):
        kek.load_keyring(keyring_path, PASSPHRASE)


def test_aad_binds_purpose_deployment_version():
    key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, b"k" * 32, kek._version_aad("kek-a", "splitkey.test", 1))

    assert AESGCM(key).decrypt(nonce, sealed, kek._version_aad("kek-a", "splitkey.test", 1)) == b"k" * 32
    for purpose, deployment, version in (
        ("kek-b", "splitkey.test", 1),
        ("kek-a", "other.test", 1),
        ("kek-a", "splitkey.test", 2),
    ):
        with pytest.raises(InvalidTag):
            AESGCM(key).decrypt(nonce, sealed, kek._version_aad(purpose, deployment, version))


@pytest.mark.parametrize(
    "field, value",
    [
        ("purpose", "kek-b"),
        ("deployment", "other.test"),
    ],
)
def test_edited_header_rejected(keyring_path, field, value):
    document = _document(keyring_path)
    document[field] = value
    _write_document(keyring_path, document)

    with pytest.raises(ConfigError, match=UNSEAL_MESSAGE):
        kek.load_keyring(keyring_path, PASSPHRASE)


def test_edited_kdf_params_rejected(keyring_path):
    document = _document(keyring_path)
    document["kdf"]["time_cost"] = 2
    _write_document(keyring_path, document)

    with pytest.raises(ConfigError, match=UNSEAL_MESSAGE):
        kek.load_keyring(keyring_path, PASSPHRASE)


def test_edited_state_rejected(keyring_path):
    kek.add_version(keyring_path, PASSPHRASE)
    document = _document(keyring_path)
    _entry(document, 1)["state"] = "added"
    _entry(document, 2)["state"] = "active"
    _write_document(keyring_path, document)

    with pytest.raises(ConfigError, match=UNSEAL_MESSAGE):
        kek.load_keyring(keyring_path, PASSPHRASE)


def test_malformed_file_rejected(keyring_path):
    keyring_path.write_text("{not json")
    with pytest.raises(ConfigError, match="malformed"):
        kek.load_keyring(keyring_path, PASSPHRASE)


def test_two_active_versions_rejected(keyring_path):
    kek.add_version(keyring_path, PASSPHRASE)
    document = _document(keyring_path)
    _entry(document, 2)["state"] = "active"
    _write_document(keyring_path, document)

    with pytest.raises(ConfigError, match="exactly one version must be active"):
        kek.load_keyring(keyring_path, PASSPHRASE)


def test_missing_file_rejected(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        kek.load_keyring(tmp_path / "absent.json", PASSPHRASE)


def test_file_mode_is_0600(tmp_path):
    old_umask = os.umask(0)
    try:
        path = tmp_path / "keyring.json"
        kek.create_keyring(path, "kek-a", "splitkey.test", PASSPHRASE, argon2_params=FAST)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        kek.add_version(path, PASSPHRASE)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        os.umask(old_umask)


def test_writes_leave_no_temporary_files(keyring_path):
    version = kek.add_version(keyring_path, PASSPHRASE)
    kek.activate_version(keyring_path, PASSPHRASE, version)

    names = sorted(entry.name for entry in keyring_path.parent.iterdir())
    assert names == [keyring_path.name, keyring_path.name + ".lock"]


def test_create_refuses_overwrite(keyring_path):
    before = keyring_path.read_bytes()
    with pytest.raises(ConfigError, match="already exists"):
        kek.create_keyring(keyring_path, "kek-a", "splitkey.test", PASSPHRASE, argon2_params=FAST)
    assert keyring_path.read_bytes() == before


@pytest.mark.parametrize(
    "purpose, deployment",
    [
        ("kek-c", "splitkey.test"),
        ("kek-a", "Splitkey.Test"),
        ("kek-a", " splitkey.test"),
        ("kek-a", ""),
    ],
)
def test_create_rejects_bad_names(tmp_path, purpose, deployment):
    with pytest.raises(ConfigError):
        kek.create_keyring(tmp_path / "k.json", purpose, deployment, PASSPHRASE, argon2_params=FAST)
    assert not (tmp_path / "k.json").exists()


def test_argon2_params_bounds():
    with pytest.raises(ConfigError, match="memory_cost"):
        kek.Argon2Params(memory_cost=4)
    with pytest.raises(ConfigError, match="time_cost"):
        kek.Argon2Params(time_cost=0)
    with pytest.raises(ConfigError, match="unknown"):
        kek._coerce_params({"iterations": 3})
    assert kek._coerce_params({"time_cost": 1, "memory_cost": 8}) == kek.Argon2Params(1, 8, 1)


def test_load_checks_expected_purpose(keyring_path):
    assert kek.load_keyring(keyring_path, PASSPHRASE, purpose="kek-a", deployment="splitkey.test").purpose == "kek-a"
    with pytest.raises(ConfigError, match="expected kek-b"):
        kek.load_keyring(keyring_path, PASSPHRASE, purpose="kek-b")
    with pytest.raises(ConfigError, match="expected other.test"):
        kek.load_keyring(keyring_path, PASSPHRASE, deployment="other.test")


def test_add_and_activate_version(keyring_path):
    old_key = kek.load_keyring(keyring_path, PASSPHRASE).key(1)

    version = kek.add_version(keyring_path, PASSPHRASE)
    added = kek.load_keyring(keyring_path, PASSPHRASE)
    assert version == 2
    assert added.states() == {1: "active", 2: "added"}
    assert added.active_version == 1

    kek.activate_version(keyring_path, PASSPHRASE, 2)
    activated = kek.load_keyring(keyring_path, PASSPHRASE)
    assert activated.states() == {1: "added", 2: "active"}
    assert activated.active_version == 2
    assert activated.key(1) == old_key
    assert activated.key(2) == added.key(2)
    assert activated.key(2) != old_key


def test_mutation_needs_right_passphrase(keyring_path):
    before = keyring_path.read_bytes()
    with pytest.raises(ConfigError, match=UNSEAL_MESSAGE):
        kek.add_version(keyring_path, b"wrong")
    assert keyring_path.read_bytes() == before


def test_retired_version_error_text(keyring_path):
    kek.add_version(keyring_path, PASSPHRASE)
    kek.activate_version(keyring_path, PASSPHRASE, 2)
    kek.retire_version(keyring_path, PASSPHRASE, 1)

    keyring = kek.load_keyring(keyring_path, PASSPHRASE)
    assert keyring.states() == {1: "retired", 2: "active"}
    with pytest.raises(KeyVersionError) as retired:
        keyring.key(1)
    assert str(retired.value) == "key version 1 is retired"
    with pytest.raises(KeyVersionError) as unknown:
        keyring.key(7)
    assert str(unknown.value) == "key version 7 is not held by this server"
    assert isinstance(unknown.value, PreconditionError)


def test_retire_removes_sealed_material(keyring_path):
    kek.add_version(keyring_path, PASSPHRASE)
    kek.activate_version(keyring_path, PASSPHRASE, 2)
    kek.retire_version(keyring_path, PASSPHRASE, 1)

    entry = _entry(_document(keyring_path), 1)
    assert entry == {"version": 1, "state": "retired"}


def test_retire_active_version_rejected(keyring_path):
    with pytest.raises(KeyVersionError, match="activate another version"):
        kek.retire_version(keyring_path, PASSPHRASE, 1)
    assert kek.load_keyring(keyring_path, PASSPHRASE).states() == {1: "active"}


def test_activate_retired_version_rejected(keyring_path):
    kek.add_version(keyring_path, PASSPHRASE)
    kek.retire_version(keyring_path, PASSPHRASE, 2)

    with pytest.raises(KeyVersionError, match="key version 2 is retired"):
        kek.activate_version(keyring_path, PASSPHRASE, 2)
    with pytest.raises(KeyVersionError, match="key version 5 is not held"):
        kek.activate_version(keyring_path, PASSPHRASE, 5)


def test_retire_twice_is_harmless(keyring_path):
    kek.add_version(keyring_path, PASSPHRASE)
    kek.retire_version(keyring_path, PASSPHRASE, 2)
    kek.retire_version(keyring_path, PASSPHRASE, 2)
    assert kek.load_keyring(keyring_path, PASSPHRASE).states() == {1: "active", 2: "retired"}


def test_concurrent_adds_keep_every_version(keyring_path):
    results: list[int] = []
    errors: list[BaseException] = []

    def add():
        try:
            results.append(kek.add_version(keyring_path, PASSPHRASE))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=add) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(results) == [2, 3, 4, 5, 6, 7]
    assert sorted(kek.load_keyring(keyring_path, PASSPHRASE).states()) == [1, 2, 3, 4, 5, 6, 7]


def test_pickling_refused(keyring_path):
    keyring = kek.load_keyring(keyring_path, PASSPHRASE)
    with pytest.raises(TypeError):
        pickle.dumps(keyring)
    with pytest.raises(TypeError):
        copy.copy(keyring)
    with pytest.raises(TypeError):
        copy.deepcopy(keyring)


def test_repr_redacted(keyring_path):
    keyring = kek.load_keyring(keyring_path, PASSPHRASE)
    key = keyring.key(1)

    for text in (repr(keyring), str(keyring), f"{keyring}", repr(keyring._keys)):
        assert "redacted" in text
        for form in _clear_forms(key):
            assert form not in text
        assert repr(key) not in text


def test_no_kek_in_clear_in_file(keyring_path):
    kek.add_version(keyring_path, PASSPHRASE)
    keyring = kek.load_keyring(keyring_path, PASSPHRASE)
    raw = keyring_path.read_bytes()
    text = raw.decode()

    for version in (1, 2):
        key = keyring.key(version)
        assert key not in raw
        for form in _clear_forms(key):
            assert form not in text
    assert PASSPHRASE not in raw


def _init_kek_parser():
    parser = argparse.ArgumentParser(prog="splitkey")
    groups = parser.add_subparsers(dest="command", required=True)
    register_init_kek(groups.add_parser("keystore").add_subparsers(dest="keystore_command", required=True), "kek-a")
    register_init_kek(groups.add_parser("secret").add_subparsers(dest="secret_command", required=True), "kek-b")
    return parser


def test_init_kek_from_passphrase_file(tmp_path, capsys):
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_bytes(PASSPHRASE + b"\n")
    passphrase_file.chmod(0o600)
    keyring = tmp_path / "kek-a.keyring.json"
    args = _init_kek_parser().parse_args(
        ["keystore", "init-kek", "--keyring", str(keyring), "--trust-domain", "splitkey.test",
         "--passphrase-file", str(passphrase_file)]
    )

    assert args.func(args) == 0
    loaded = kek.load_keyring(keyring, PASSPHRASE)
    assert loaded.purpose == "kek-a"
    assert loaded.deployment == "splitkey.test"
    output = capsys.readouterr()
    assert PASSPHRASE.decode() not in output.out + output.err
    assert "warning" not in output.err


def test_init_kek_from_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPLITKEY_TEST_KEK_B", PASSPHRASE.decode())
    keyring = tmp_path / "kek-b.keyring.json"
    args = _init_kek_parser().parse_args(
        ["secret", "init-kek", "--keyring", str(keyring), "--trust-domain", "splitkey.test",
         "--passphrase-env", "SPLITKEY_TEST_KEK_B"]
    )

    assert args.func(args) == 0
    assert kek.load_keyring(keyring, PASSPHRASE).purpose == "kek-b"
    assert args.func(args) == 1
    assert "already exists" in capsys.readouterr().err


def test_init_kek_rejects_passphrase_argument(tmp_path):
    parser = _init_kek_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(
            ["keystore", "init-kek", "--keyring", str(tmp_path / "k.json"), "--trust-domain", "splitkey.test",
             "--passphrase", "secret"]
        )
    with pytest.raises(SystemExit):
        parser.parse_args(["keystore", "init-kek", "--keyring", str(tmp_path / "k.json"), "--trust-domain", "x.test"])


def test_init_kek_missing_sources_fail(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SPLITKEY_TEST_UNSET", raising=False)
    parser = _init_kek_parser()
    keyring = tmp_path / "k.json"

    missing_file = parser.parse_args(
        ["keystore", "init-kek", "--keyring", str(keyring), "--trust-domain", "splitkey.test",
         "--passphrase-file", str(tmp_path / "absent")]
    )
    assert missing_file.func(missing_file) == 1
    assert "does not exist" in capsys.readouterr().err

    unset_env = parser.parse_args(
        ["keystore", "init-kek", "--keyring", str(keyring), "--trust-domain", "splitkey.test",
         "--passphrase-env", "SPLITKEY_TEST_UNSET"]
    )
    assert unset_env.func(unset_env) == 1
    assert "SPLITKEY_TEST_UNSET" in capsys.readouterr().err
    assert not keyring.exists()


def test_init_kek_warns_on_exposed_file(tmp_path, capsys):
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_bytes(PASSPHRASE)
    passphrase_file.chmod(0o644)
    args = _init_kek_parser().parse_args(
        ["keystore", "init-kek", "--keyring", str(tmp_path / "k.json"), "--trust-domain", "splitkey.test",
         "--passphrase-file", str(passphrase_file)]
    )

    assert args.func(args) == 0
    assert "chmod 600" in capsys.readouterr().err

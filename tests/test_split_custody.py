"""Each server's own data and KEK are not enough to recover a key."""

from __future__ import annotations

import sqlite3

import pytest

from splitkey import record
from splitkey.config import load_keystore_config, load_secret_config
from splitkey.context import Context
from splitkey.errors import IntegrityError
from splitkey.kek import load_keyring

API_KEY = "sk-proj-TESTONLY-custody11112222"


@pytest.fixture(scope="module")
def stored_row(deployment, app):
    added = app.add_key("ws-custody", "openai", API_KEY)
    connection = sqlite3.connect(deployment.root / "keystore" / "data" / "keystore.sqlite3")
    row = connection.execute(
        "SELECT ciphertext, wrap_a, wrap_b FROM records WHERE record_id = ?", (added.record_id,)
    ).fetchone()
    connection.close()
    context = Context(deployment="splitkey.test", workspace="ws-custody", provider="openai", record_id=added.record_id)
    return context, row


def test_keystore_alone_cannot_decrypt(deployment, stored_row):
    """Everything the keystore host has: its database, KEK-A and passphrase. share_a alone is not the DEK."""
    context, (ciphertext, wrap_a, wrap_b) = stored_row
    config = load_keystore_config(deployment.root / "keystore.toml")
    kek_a = load_keyring(config.kek_a.keyring, config.kek_a.passphrase.read())
    share_a = record.unwrap_share(kek_a.key(1), wrap_a, context, "share-a")
    with pytest.raises(IntegrityError):
        record.open_content(share_a, ciphertext, context)
    with pytest.raises(IntegrityError):
        record.unwrap_share(kek_a.key(1), wrap_b, context, "share-b")


def test_secret_server_alone_cannot_decrypt(deployment, stored_row):
    """The secret server holds KEK-B but stores neither wrap_b nor the ciphertext."""
    config = load_secret_config(deployment.root / "secret.toml")
    connection = sqlite3.connect(config.database)
    tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    blob_columns = [
        (table, column[1])
        for table in tables
        for column in connection.execute(f"PRAGMA table_info({table})")
        if column[2].upper() == "BLOB"
    ]
    connection.close()
    assert blob_columns == []


def test_both_halves_together_decrypt(deployment, stored_row):
    """The same material plus KEK-B does decrypt, so the two tests above fail for the right reason."""
    context, (ciphertext, wrap_a, wrap_b) = stored_row
    keystore = load_keystore_config(deployment.root / "keystore.toml")
    secret = load_secret_config(deployment.root / "secret.toml")
    kek_a = load_keyring(keystore.kek_a.keyring, keystore.kek_a.passphrase.read())
    kek_b = load_keyring(secret.kek_b.keyring, secret.kek_b.passphrase.read())
    share_a = record.unwrap_share(kek_a.key(1), wrap_a, context, "share-a")
    share_b = record.unwrap_share(kek_b.key(1), wrap_b, context, "share-b")
    dek = record.combine_shares(share_a, share_b)
    assert record.open_content(dek, ciphertext, context).decode() == API_KEY

"""Certificates and the development deployment made by `splitkey pki init`."""

from __future__ import annotations

import argparse
import datetime
import stat

import nacl.exceptions
import nacl.signing
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import DNSName, PolicyBuilder, Store, VerificationError

from client.cli import pki_commands
from splitkey.config import load_client_config, load_keystore_config, load_secret_config
from splitkey.errors import ConfigError
from splitkey.kek import Argon2Params, load_keyring
from splitkey.pki import certs
from splitkey.pki.deployment import init_deployment, issue_client

FAST = Argon2Params(time_cost=1, memory_cost=8, parallelism=1)
ROLES = ("app", "worker", "security", "auditor")
TRUST_DOMAIN = "splitkey.test"

PRIVATE_FILES = [
    "ca/keystore-ca.key",
    "ca/secret-ca.key",
    "keystore/server.key",
    "keystore/to-secret.key",
    "keystore/kek-a.keyring.json",
    "keystore/kek-a.passphrase",
    "keystore/grant-signing.key",
    "secret/server.key",
    "secret/kek-b.keyring.json",
    "secret/kek-b.passphrase",
] + [f"clients/{role}/{server}.key" for role in ROLES for server in ("keystore", "secret")]

PUBLIC_FILES = [
    "ca/keystore-ca.pem",
    "ca/secret-ca.pem",
    "keystore/server.pem",
    "keystore/to-secret.pem",
    "secret/server.pem",
    "secret/grant-verify.pub",
    "keystore.toml",
    "secret.toml",
    "README.txt",
] + [f"clients/{role}/{server}.pem" for role in ROLES for server in ("keystore", "secret")] + [
    f"client-{role}.toml" for role in ROLES
]

PRIVATE_DIRS = ["", "ca", "keystore", "keystore/data", "secret", "secret/data", "clients"] + [
    f"clients/{role}" for role in ROLES
]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    return init_deployment(tmp_path_factory.mktemp("pki") / "dev", argon2_params=FAST)


def _certificate(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def _san(certificate, kind):
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return extension.value.get_values_for_type(kind)


def _eku(certificate):
    return list(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def _is_issued_by(certificate, ca_certificate):
    try:
        certificate.verify_directly_issued_by(ca_certificate)
    except (ValueError, InvalidSignature):
        return False
    return True


def test_layout_complete(deployment):
    for name in PRIVATE_FILES + PUBLIC_FILES:
        assert (deployment / name).is_file(), name
    for name in PRIVATE_DIRS:
        assert (deployment / name).is_dir(), name


def test_private_file_modes(deployment):
    for name in PRIVATE_FILES:
        assert stat.S_IMODE((deployment / name).stat().st_mode) == 0o600, name


def test_directory_modes(deployment):
    for name in PRIVATE_DIRS:
        assert stat.S_IMODE((deployment / name).stat().st_mode) == 0o700, name or "deployment root"


def test_client_certs_one_san_uri(deployment):
    for role in ROLES:
        for server in ("keystore", "secret"):
            certificate = _certificate(deployment / f"clients/{role}/{server}.pem")
            assert _san(certificate, x509.UniformResourceIdentifier) == [f"spiffe://{TRUST_DOMAIN}/{role}/dev"]
            assert _san(certificate, x509.DNSName) == []
            assert _eku(certificate) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_keystore_identity_cert(deployment):
    certificate = _certificate(deployment / "keystore/to-secret.pem")
    secret_ca = _certificate(deployment / "ca/secret-ca.pem")
    keystore_ca = _certificate(deployment / "ca/keystore-ca.pem")

    assert _san(certificate, x509.UniformResourceIdentifier) == [f"spiffe://{TRUST_DOMAIN}/keystore/main"]
    assert _eku(certificate) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert _is_issued_by(certificate, secret_ca)
    assert not _is_issued_by(certificate, keystore_ca)


def test_each_ca_issues_its_side(deployment):
    keystore_ca = _certificate(deployment / "ca/keystore-ca.pem")
    secret_ca = _certificate(deployment / "ca/secret-ca.pem")

    assert keystore_ca.public_key() != secret_ca.public_key()
    assert _is_issued_by(_certificate(deployment / "keystore/server.pem"), keystore_ca)
    assert _is_issued_by(_certificate(deployment / "secret/server.pem"), secret_ca)
    for role in ROLES:
        to_keystore = _certificate(deployment / f"clients/{role}/keystore.pem")
        to_secret = _certificate(deployment / f"clients/{role}/secret.pem")
        assert _is_issued_by(to_keystore, keystore_ca)
        assert not _is_issued_by(to_keystore, secret_ca)
        assert _is_issued_by(to_secret, secret_ca)
        assert not _is_issued_by(to_secret, keystore_ca)


def test_server_certs_names(deployment):
    for server in ("keystore", "secret"):
        certificate = _certificate(deployment / f"{server}/server.pem")
        assert "localhost" in _san(certificate, x509.DNSName)
        assert [str(ip) for ip in _san(certificate, x509.IPAddress)] == ["127.0.0.1"]
        assert _san(certificate, x509.UniformResourceIdentifier) == []
        assert _eku(certificate) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_server_cert_verifies_for_localhost(deployment):
    for server, ca in (("keystore", "keystore-ca"), ("secret", "secret-ca")):
        store = Store([_certificate(deployment / f"ca/{ca}.pem")])
        verifier = PolicyBuilder().store(store).build_server_verifier(DNSName("localhost"))
        chain = verifier.verify(_certificate(deployment / f"{server}/server.pem"), [])
        assert len(chain) == 2


def test_key_files_match_certificates(deployment):
    pairs = [
        ("ca/keystore-ca.pem", "ca/keystore-ca.key"),
        ("ca/secret-ca.pem", "ca/secret-ca.key"),
        ("keystore/server.pem", "keystore/server.key"),
        ("keystore/to-secret.pem", "keystore/to-secret.key"),
        ("secret/server.pem", "secret/server.key"),
    ] + [(f"clients/{role}/{server}.pem", f"clients/{role}/{server}.key") for role in ROLES for server in ("keystore", "secret")]
    for cert_name, key_name in pairs:
        certs.load_certified_key(deployment / cert_name, deployment / key_name)


def test_client_validity_window(deployment):
    certificate = _certificate(deployment / "clients/worker/keystore.pem")
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert datetime.timedelta(days=30) < lifetime < datetime.timedelta(days=30, minutes=10)


def test_configs_load(deployment):
    keystore = load_keystore_config(deployment / "keystore.toml")
    secret = load_secret_config(deployment / "secret.toml")

    assert keystore.trust_domain == TRUST_DOMAIN
    assert secret.trust_domain == TRUST_DOMAIN
    assert keystore.listen.startswith("127.0.0.1:")
    assert secret.listen.startswith("127.0.0.1:")
    assert not keystore.listen.endswith(":0")
    assert not secret.listen.endswith(":0")
    assert keystore.listen != secret.listen
    assert keystore.secret_server_address == secret.listen
    assert keystore.tls.ca == deployment / "ca/keystore-ca.pem"
    assert keystore.secret_server_tls.ca == deployment / "ca/secret-ca.pem"
    assert keystore.secret_server_tls.cert == deployment / "keystore/to-secret.pem"
    assert secret.tls.ca == deployment / "ca/secret-ca.pem"
    assert keystore.data_dir == deployment / "keystore/data"
    assert keystore.log_file == deployment / "keystore/server.log"
    assert secret.log_file == deployment / "secret/server.log"

    for role in ROLES:
        client = load_client_config(deployment / f"client-{role}.toml")
        assert client.trust_domain == TRUST_DOMAIN
        assert client.keystore.address == keystore.listen
        assert client.secret.address == secret.listen
        assert client.keystore.tls.ca == deployment / "ca/keystore-ca.pem"
        assert client.secret.tls.ca == deployment / "ca/secret-ca.pem"
        assert client.keystore.tls.cert == deployment / f"clients/{role}/keystore.pem"


def test_toml_paths_are_relative(deployment):
    for name in ["keystore.toml", "secret.toml"] + [f"client-{role}.toml" for role in ROLES]:
        assert str(deployment) not in (deployment / name).read_text(), name


def test_keyrings_open_with_passphrase_files(deployment):
    keystore = load_keystore_config(deployment / "keystore.toml")
    secret = load_secret_config(deployment / "secret.toml")

    kek_a = load_keyring(keystore.kek_a.keyring, keystore.kek_a.passphrase.read())
    kek_b = load_keyring(secret.kek_b.keyring, secret.kek_b.passphrase.read())
    assert kek_a.purpose == "kek-a"
    assert kek_b.purpose == "kek-b"
    assert kek_a.deployment == TRUST_DOMAIN
    assert kek_b.deployment == TRUST_DOMAIN
    assert kek_a.key(1) != kek_b.key(1)
    assert keystore.kek_a.passphrase.read() != secret.kek_b.passphrase.read()


def test_grant_keys_match(deployment):
    seed_text = (deployment / "keystore/grant-signing.key").read_text()
    public_text = (deployment / "secret/grant-verify.pub").read_text()
    assert len(seed_text) == 64
    assert len(public_text) == 64

    signing_key = nacl.signing.SigningKey(bytes.fromhex(seed_text))
    verify_key = nacl.signing.VerifyKey(bytes.fromhex(public_text))
    assert signing_key.verify_key == verify_key
    signed = signing_key.sign(b"grant")
    assert verify_key.verify(signed) == b"grant"
    with pytest.raises(nacl.exceptions.BadSignatureError):
        verify_key.verify(b"grant!", signed.signature)


def test_readme_warns_development_only(deployment):
    text = (deployment / "README.txt").read_text()
    assert "DEVELOPMENT" in text
    assert "init-kek" in text
    assert "defeats the split" in text


def test_refuses_non_empty_directory(tmp_path):
    target = tmp_path / "dev"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")

    with pytest.raises(ConfigError, match="not empty"):
        init_deployment(target, argon2_params=FAST)
    assert sorted(entry.name for entry in target.iterdir()) == ["notes.txt"]


def test_refuses_existing_deployment(tmp_path):
    target = init_deployment(tmp_path / "dev", argon2_params=FAST)
    before = (target / "ca/keystore-ca.pem").read_bytes()

    with pytest.raises(ConfigError, match="--force"):
        init_deployment(target, argon2_params=FAST)
    assert (target / "ca/keystore-ca.pem").read_bytes() == before


def test_force_replaces_deployment(tmp_path):
    target = init_deployment(tmp_path / "dev", argon2_params=FAST)
    before = (target / "ca/keystore-ca.pem").read_bytes()
    (target / "notes.txt").write_text("keep me")
    (target / "keystore/data/keystore.sqlite3").write_bytes(b"old rows")
    issue_client(target, "security", "second")

    init_deployment(target, argon2_params=FAST, force=True)

    assert (target / "ca/keystore-ca.pem").read_bytes() != before
    assert (target / "notes.txt").read_text() == "keep me"
    assert not (target / "keystore/data/keystore.sqlite3").exists()
    assert not (target / "client-security-second.toml").exists()
    load_keystore_config(target / "keystore.toml")
    assert not [entry for entry in tmp_path.iterdir() if entry.name.startswith(".dev.init-")]


def test_empty_directory_accepted(tmp_path):
    target = tmp_path / "dev"
    target.mkdir()
    init_deployment(target, argon2_params=FAST)
    assert (target / "keystore.toml").is_file()


def test_failure_leaves_nothing(tmp_path):
    with pytest.raises(ConfigError):
        init_deployment(tmp_path / "dev", argon2_params={"time_cost": 0})
    assert list(tmp_path.iterdir()) == []


def test_explicit_addresses_and_trust_domain(tmp_path):
    target = init_deployment(
        tmp_path / "dev",
        trust_domain="example.internal",
        keystore_address="127.0.0.1:7443",
        secret_address="0.0.0.0:7444",
        argon2_params=FAST,
    )
    keystore = load_keystore_config(target / "keystore.toml")
    secret = load_secret_config(target / "secret.toml")
    client = load_client_config(target / "client-app.toml")

    assert keystore.listen == "127.0.0.1:7443"
    assert secret.listen == "0.0.0.0:7444"
    assert keystore.secret_server_address == "127.0.0.1:7444"
    assert client.secret.address == "127.0.0.1:7444"
    app_cert = _certificate(target / "clients/app/keystore.pem")
    assert _san(app_cert, x509.UniformResourceIdentifier) == ["spiffe://example.internal/app/dev"]


def test_rejects_bad_input(tmp_path):
    with pytest.raises(ConfigError, match="trust domain"):
        init_deployment(tmp_path / "a", trust_domain="Not A Domain", argon2_params=FAST)
    with pytest.raises(ConfigError, match="HOST:PORT"):
        init_deployment(tmp_path / "b", keystore_address="localhost", argon2_params=FAST)
    with pytest.raises(ConfigError, match="client_days"):
        init_deployment(tmp_path / "c", client_days=0, argon2_params=FAST)
    assert list(tmp_path.iterdir()) == []


def test_issue_client_second_identity(deployment):
    toml_path = issue_client(deployment, "security", "second", days=2)
    config = load_client_config(toml_path)
    keystore_ca = _certificate(deployment / "ca/keystore-ca.pem")

    certificate = _certificate(config.keystore.tls.cert)
    assert toml_path.name == "client-security-second.toml"
    assert _san(certificate, x509.UniformResourceIdentifier) == [f"spiffe://{TRUST_DOMAIN}/security/second"]
    assert _is_issued_by(certificate, keystore_ca)
    assert stat.S_IMODE(config.keystore.tls.key.stat().st_mode) == 0o600
    with pytest.raises(ConfigError, match="not a client role"):
        issue_client(deployment, "keystore", "other")


def test_not_before_five_minutes_ago():
    ca = certs.new_ca("test root")
    before = datetime.datetime.now(datetime.timezone.utc)
    leaf = certs.issue_leaf(ca, uris=["spiffe://splitkey.test/app/dev"])
    after = datetime.datetime.now(datetime.timezone.utc)

    # X.509 times have one-second resolution, so allow a second either way.
    start = leaf.certificate.not_valid_before_utc
    assert before - datetime.timedelta(minutes=5, seconds=1) <= start
    assert start <= after - datetime.timedelta(minutes=5) + datetime.timedelta(seconds=1)
    assert ca.certificate.not_valid_before_utc <= before - datetime.timedelta(minutes=4)


def test_explicit_validity_respected():
    ca = certs.new_ca("test root")
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    end = datetime.datetime(2020, 1, 2, tzinfo=datetime.timezone.utc)
    leaf = certs.issue_leaf(ca, uris=["spiffe://splitkey.test/app/dev"], not_before=start, not_after=end)

    assert leaf.certificate.not_valid_before_utc == start
    assert leaf.certificate.not_valid_after_utc == end
    with pytest.raises(ValueError, match="later than"):
        certs.issue_leaf(ca, uris=["spiffe://splitkey.test/app/dev"], not_before=end, not_after=start)


def test_leaf_san_uris_exact():
    ca = certs.new_ca("test root")
    uris = ["spiffe://splitkey.test/app/a", "spiffe://splitkey.test/app/b"]

    two = certs.issue_leaf(ca, uris=uris)
    none = certs.issue_leaf(ca, client_auth=True)
    assert _san(two.certificate, x509.UniformResourceIdentifier) == uris
    assert _san(none.certificate, x509.UniformResourceIdentifier) == []
    assert _eku(none.certificate) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(ValueError, match="no use"):
        certs.issue_leaf(ca)


def test_long_uri_truncates_common_name():
    ca = certs.new_ca("test root")
    uri = "spiffe://splitkey.test/worker/" + "w" * 60
    leaf = certs.issue_leaf(ca, uris=[uri])
    common_names = leaf.certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    assert _san(leaf.certificate, x509.UniformResourceIdentifier) == [uri]
    assert common_names[0].value == uri[:64]


def test_chain_verifies_through_intermediate(tmp_path):
    root = certs.new_ca("test root")
    intermediate = certs.new_intermediate(root, "test intermediate")
    client = certs.issue_leaf(intermediate, uris=["spiffe://splitkey.test/worker/dev"])
    server = certs.issue_leaf(intermediate, dns=["localhost"], ips=["127.0.0.1"])

    assert client.chain == (intermediate.certificate,)
    assert client.certificate.issuer == intermediate.certificate.subject
    client.certificate.verify_directly_issued_by(intermediate.certificate)
    intermediate.certificate.verify_directly_issued_by(root.certificate)

    store = Store([root.certificate])
    verified = PolicyBuilder().store(store).build_client_verifier().verify(client.certificate, list(client.chain))
    assert [cert.subject for cert in verified.chain] == [
        client.certificate.subject,
        intermediate.certificate.subject,
        root.certificate.subject,
    ]
    server_chain = (
        PolicyBuilder().store(store).build_server_verifier(DNSName("localhost")).verify(server.certificate, list(server.chain))
    )
    assert len(server_chain) == 3

    certs.write_certified_key(tmp_path / "leaf.pem", tmp_path / "leaf.key", client)
    assert len(x509.load_pem_x509_certificates((tmp_path / "leaf.pem").read_bytes())) == 2
    reloaded = certs.load_certified_key(tmp_path / "leaf.pem", tmp_path / "leaf.key")
    assert reloaded.chain == (intermediate.certificate,)
    assert stat.S_IMODE((tmp_path / "leaf.key").stat().st_mode) == 0o600


def test_two_level_intermediates_chain():
    root = certs.new_ca("test root", path_length=2)
    first = certs.new_intermediate(root, "first", path_length=1)
    second = certs.new_intermediate(first, "second")
    leaf = certs.issue_leaf(second, uris=["spiffe://splitkey.test/app/dev"])

    assert leaf.chain == (second.certificate, first.certificate)
    verifier = PolicyBuilder().store(Store([root.certificate])).build_client_verifier()
    assert len(verifier.verify(leaf.certificate, list(leaf.chain)).chain) == 4


def test_foreign_and_expired_rejected():
    root = certs.new_ca("test root")
    foreign = certs.new_ca("foreign root")
    verifier = PolicyBuilder().store(Store([root.certificate])).build_client_verifier()

    stranger = certs.issue_leaf(foreign, uris=["spiffe://splitkey.test/worker/dev"])
    with pytest.raises(VerificationError):
        verifier.verify(stranger.certificate, [])

    now = datetime.datetime.now(datetime.timezone.utc)
    expired = certs.issue_leaf(
        root,
        uris=["spiffe://splitkey.test/worker/dev"],
        not_before=now - datetime.timedelta(days=2),
        not_after=now - datetime.timedelta(days=1),
    )
    with pytest.raises(VerificationError):
        verifier.verify(expired.certificate, [])

    future = certs.issue_leaf(
        root,
        uris=["spiffe://splitkey.test/worker/dev"],
        not_before=now + datetime.timedelta(days=1),
        not_after=now + datetime.timedelta(days=2),
    )
    with pytest.raises(VerificationError):
        verifier.verify(future.certificate, [])


def test_load_certified_key_mismatch(tmp_path):
    first = certs.new_ca("first")
    second = certs.new_ca("second")
    certs.write_certificate(tmp_path / "first.pem", first)
    certs.write_private_key(tmp_path / "second.key", second)

    with pytest.raises(ValueError, match="does not match"):
        certs.load_certified_key(tmp_path / "first.pem", tmp_path / "second.key")


def test_repr_hides_private_key():
    ca = certs.new_ca("test root")
    assert "redacted" in repr(ca)
    assert "PRIVATE KEY" not in repr(ca)


def _pki_parser():
    parser = argparse.ArgumentParser(prog="splitkey")
    pki_commands.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_init_prints_table(tmp_path, capsys):
    target = tmp_path / "dev"
    args = _pki_parser().parse_args(["pki", "init", str(target), "--trust-domain", "cli.test", "--client-days", "7"])

    assert args.func(args) == 0
    output = capsys.readouterr().out
    keystore = load_keystore_config(target / "keystore.toml")
    assert keystore.trust_domain == "cli.test"
    assert keystore.listen in output
    assert "spiffe://cli.test/keystore/main" in output
    for role in ROLES:
        assert f"spiffe://cli.test/{role}/dev" in output
        assert f"client-{role}.toml" in output
    assert "DEVELOPMENT ONLY" in output
    for passphrase_file in ("keystore/kek-a.passphrase", "secret/kek-b.passphrase"):
        assert (target / passphrase_file).read_text() not in output

    again = _pki_parser().parse_args(["pki", "init", str(target)])
    assert again.func(again) == 1
    assert "--force" in capsys.readouterr().err


def test_cli_issue_client(deployment, capsys):
    args = _pki_parser().parse_args(["pki", "issue-client", str(deployment), "auditor", "--name", "second", "--days", "3"])

    assert args.func(args) == 0
    assert f"spiffe://{TRUST_DOMAIN}/auditor/second" in capsys.readouterr().out
    assert (deployment / "client-auditor-second.toml").is_file()

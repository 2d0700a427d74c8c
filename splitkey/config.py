"""Configuration files of the servers and clients (TOML).

`splitkey pki init` writes one file per server and one per client role. Every
relative path in a file is resolved against the folder that holds the file,
so a deployment folder can be moved as a whole. Loading checks that every
named file exists, so a typo fails at start-up and not at the first request.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from splitkey.errors import ConfigError


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of one mTLS endpoint: our certificate chain, its key, and the CA we trust."""

    cert: Path
    key: Path
    ca: Path


@dataclass(frozen=True)
class PassphraseSource:
    """Where a KEK passphrase comes from: a file, or an environment variable. Never argv."""

    file: Path | None
    env: str | None

    def read(self) -> bytes:
        """Read the passphrase, stripping one trailing newline from a file."""
        if self.file is not None:
            data = self.file.read_bytes()
            if data.endswith(b"\n"):
                data = data[:-1]
            if not data:
                raise ConfigError(f"passphrase file {self.file} is empty; write the passphrase into it")
            return data
        assert self.env is not None
        value = os.environ.get(self.env)
        if not value:
            raise ConfigError(f"environment variable {self.env} is unset or empty; set it to the KEK passphrase")
        return value.encode()


@dataclass(frozen=True)
class KekConfig:
    """A sealed KEK keyring file and the passphrase that opens it."""

    keyring: Path
    passphrase: PassphraseSource


@dataclass(frozen=True)
class ServerLimits:
    """Bounds that protect a server from oversized or slow requests."""

    max_message_bytes: int = 64 * 1024
    workers: int = 16
    sqlite_busy_timeout_s: float = 5.0
    audit_timeout_s: float = 2.0


@dataclass(frozen=True)
class AuditConfig:
    """The [audit] table: this server's audit signing key, the other server's key, and timings.

    The log itself is `<data_dir>/audit.sqlite3`. Times are in seconds.
    """

    # Ed25519 seed (hex, 0600) that signs this server's audit heads.
    signing_key: Path
    # Hex Ed25519 public key of the other server's audit log, to verify the heads it witnesses.
    peer_public_key: str
    # Name of this log in its entries and signed heads.
    server_id: str
    timeout_s: float = 2.0
    checkpoint_every: int = 1000
    checkpoint_interval_s: float = 60.0
    # How often the keystore exchanges signed heads with the secret server.
    witness_interval_s: float = 30.0
    denial_window_s: float = 10.0


@dataclass(frozen=True)
class KeystoreConfig:
    listen: str
    trust_domain: str
    data_dir: Path
    tls: TlsFiles
    kek_a: KekConfig
    grant_signing_key: Path
    secret_server_address: str
    # Client certificate of the keystore identity, issued by the secret server's CA.
    secret_server_tls: TlsFiles
    limits: ServerLimits = field(default_factory=ServerLimits)
    log_file: Path | None = None
    audit: AuditConfig | None = None

    @property
    def database(self) -> Path:
        return self.data_dir / "keystore.sqlite3"

    @property
    def audit_log(self) -> Path:
        return self.data_dir / "audit.sqlite3"


@dataclass(frozen=True)
class SecretConfig:
    listen: str
    trust_domain: str
    data_dir: Path
    tls: TlsFiles
    kek_b: KekConfig
    grant_verify_key: Path
    limits: ServerLimits = field(default_factory=ServerLimits)
    log_file: Path | None = None
    audit: AuditConfig | None = None

    @property
    def database(self) -> Path:
        return self.data_dir / "secret.sqlite3"

    @property
    def audit_log(self) -> Path:
        return self.data_dir / "audit.sqlite3"


@dataclass(frozen=True)
class Endpoint:
    """One server as a client sees it: its address and the TLS files for it."""

    address: str
    tls: TlsFiles


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff for transient transport errors (seconds)."""

    max_attempts: int = 4
    initial_backoff_s: float = 0.05
    max_backoff_s: float = 1.0
    total_timeout_s: float = 10.0


@dataclass(frozen=True)
class ProviderRetryPolicy:
    """Backoff of calls to AI providers inside `KeyClient.call` (seconds)."""

    max_attempts: int = 5
    max_total_s: float = 60.0
    initial_s: float = 1.0
    max_s: float = 30.0


@dataclass(frozen=True)
class ClientConfig:
    trust_domain: str
    keystore: Endpoint | None
    secret: Endpoint | None
    rpc_timeout_s: float = 5.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Warn at start when a client certificate expires within this many days.
    cert_expiry_warning_days: float = 7.0
    provider_retry: ProviderRetryPolicy = field(default_factory=ProviderRetryPolicy)
    # [providers] table: base URLs and probe models, passed to ProviderEndpoints.
    # Provider endpoints come only from here, never from stored data.
    providers: dict = field(default_factory=dict, hash=False)


def _table(data: dict, name: str, source: Path) -> dict:
    value = data.get(name)
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: missing table [{name}]")
    return value


def _string(table: dict, key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: missing or empty string '{key}'")
    return value


def _path(table: dict, key: str, where: str, base: Path, must_exist: bool = True) -> Path:
    path = Path(_string(table, key, where))
    if not path.is_absolute():
        path = base / path
    if must_exist and not path.exists():
        raise ConfigError(f"{where}: '{key}' names {path}, which does not exist")
    return path


def _tls(table: dict, where: str, base: Path) -> TlsFiles:
    return TlsFiles(
        cert=_path(table, "cert", where, base),
        key=_path(table, "key", where, base),
        ca=_path(table, "ca", where, base),
    )


def _kek(table: dict, where: str, base: Path) -> KekConfig:
    file = table.get("passphrase_file")
    env = table.get("passphrase_env")
    if (file is None) == (env is None):
        raise ConfigError(f"{where}: set exactly one of 'passphrase_file' or 'passphrase_env'")
    source = PassphraseSource(
        file=_path(table, "passphrase_file", where, base) if file is not None else None,
        env=_string(table, "passphrase_env", where) if env is not None else None,
    )
    return KekConfig(keyring=_path(table, "keyring", where, base), passphrase=source)


def _limits(data: dict, source: Path) -> ServerLimits:
    table = data.get("limits", {})
    defaults = ServerLimits()
    values = {}
    for name in ("max_message_bytes", "workers", "sqlite_busy_timeout_s", "audit_timeout_s"):
        value = table.get(name, getattr(defaults, name))
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{source} [limits]: '{name}' must be a positive number")
        values[name] = value
    return ServerLimits(**values)


_HEX_PUBLIC_KEY = re.compile(r"[0-9a-f]{64}")


def _audit(data: dict, source: Path, base: Path, limits: ServerLimits, default_server_id: str) -> AuditConfig:
    where = f"{source} [audit]"
    table = data.get("audit")
    if not isinstance(table, dict):
        raise ConfigError(
            f"{source}: missing table [audit]; add signing_key and peer_public_key "
            "(`splitkey pki init` writes them)"
        )
    peer_public_key = _string(table, "peer_public_key", where)
    if not _HEX_PUBLIC_KEY.fullmatch(peer_public_key):
        raise ConfigError(f"{where}: 'peer_public_key' must be 64 lower-case hex digits (an Ed25519 public key)")
    server_id = table.get("server_id", default_server_id)
    if not isinstance(server_id, str) or not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", server_id):
        raise ConfigError(f"{where}: 'server_id' must be 1 to 64 characters of a-z, 0-9, '.', '_' or '-'")
    defaults = AuditConfig(signing_key=Path(), peer_public_key="", server_id="", timeout_s=limits.audit_timeout_s)
    values: dict = {}
    for name in ("timeout_s", "checkpoint_every", "checkpoint_interval_s", "witness_interval_s", "denial_window_s"):
        value = table.get(name, getattr(defaults, name))
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{where}: '{name}' must be a positive number")
        if name == "checkpoint_every" and not isinstance(value, int):
            raise ConfigError(f"{where}: 'checkpoint_every' must be a whole number of entries")
        values[name] = value
    return AuditConfig(
        signing_key=_path(table, "signing_key", where, base),
        peer_public_key=peer_public_key,
        server_id=server_id,
        **values,
    )


def _read(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"configuration file {path} is not valid TOML: {error}") from None


def _log_file(server: dict, base: Path) -> Path | None:
    value = server.get("log_file")
    if value is None:
        return None
    path = Path(value)
    return path if path.is_absolute() else base / path


def load_keystore_config(path: str | os.PathLike) -> KeystoreConfig:
    source = Path(path).resolve()
    base = source.parent
    data = _read(source)
    server = _table(data, "server", source)
    secret = _table(data, "secret_server", source)
    limits = _limits(data, source)
    return KeystoreConfig(
        listen=_string(server, "listen", f"{source} [server]"),
        trust_domain=_string(server, "trust_domain", f"{source} [server]"),
        data_dir=_path(server, "data_dir", f"{source} [server]", base, must_exist=False),
        tls=_tls(_table(data, "tls", source), f"{source} [tls]", base),
        kek_a=_kek(_table(data, "kek", source), f"{source} [kek]", base),
        grant_signing_key=_path(_table(data, "grant", source), "signing_key", f"{source} [grant]", base),
        secret_server_address=_string(secret, "address", f"{source} [secret_server]"),
        secret_server_tls=_tls(secret, f"{source} [secret_server]", base),
        limits=limits,
        log_file=_log_file(server, base),
        audit=_audit(data, source, base, limits, "keystore"),
    )


def load_secret_config(path: str | os.PathLike) -> SecretConfig:
    source = Path(path).resolve()
    base = source.parent
    data = _read(source)
    server = _table(data, "server", source)
    limits = _limits(data, source)
    return SecretConfig(
        listen=_string(server, "listen", f"{source} [server]"),
        trust_domain=_string(server, "trust_domain", f"{source} [server]"),
        data_dir=_path(server, "data_dir", f"{source} [server]", base, must_exist=False),
        tls=_tls(_table(data, "tls", source), f"{source} [tls]", base),
        kek_b=_kek(_table(data, "kek", source), f"{source} [kek]", base),
        grant_verify_key=_path(_table(data, "grant", source), "verify_key", f"{source} [grant]", base),
        limits=limits,
        log_file=_log_file(server, base),
        audit=_audit(data, source, base, limits, "secret"),
    )


def _endpoint(data: dict, name: str, source: Path, base: Path) -> Endpoint | None:
    table = data.get(name)
    if table is None:
        return None
    where = f"{source} [{name}]"
    return Endpoint(address=_string(table, "address", where), tls=_tls(table, where, base))


def load_client_config(path: str | os.PathLike) -> ClientConfig:
    source = Path(path).resolve()
    base = source.parent
    data = _read(source)
    client = data.get("client", {})
    retry_table = data.get("retry", {})
    defaults = RetryPolicy()
    retry = RetryPolicy(
        max_attempts=int(retry_table.get("max_attempts", defaults.max_attempts)),
        initial_backoff_s=float(retry_table.get("initial_backoff_s", defaults.initial_backoff_s)),
        max_backoff_s=float(retry_table.get("max_backoff_s", defaults.max_backoff_s)),
        total_timeout_s=float(retry_table.get("total_timeout_s", defaults.total_timeout_s)),
    )
    if retry.max_attempts < 1:
        raise ConfigError(f"{source} [retry]: 'max_attempts' must be at least 1")
    calls = data.get("provider_retry", {})
    call_defaults = ProviderRetryPolicy()
    provider_retry = ProviderRetryPolicy(
        max_attempts=int(calls.get("max_attempts", call_defaults.max_attempts)),
        max_total_s=float(calls.get("max_total_s", call_defaults.max_total_s)),
        initial_s=float(calls.get("initial_s", call_defaults.initial_s)),
        max_s=float(calls.get("max_s", call_defaults.max_s)),
    )
    if provider_retry.max_attempts < 1:
        raise ConfigError(f"{source} [provider_retry]: 'max_attempts' must be at least 1")
    providers = data.get("providers", {})
    if not isinstance(providers, dict):
        raise ConfigError(f"{source}: [providers] must be a table of base URLs")
    config = ClientConfig(
        trust_domain=_string(client, "trust_domain", f"{source} [client]"),
        keystore=_endpoint(data, "keystore", source, base),
        secret=_endpoint(data, "secret", source, base),
        rpc_timeout_s=float(client.get("rpc_timeout_s", 5.0)),
        retry=retry,
        cert_expiry_warning_days=float(client.get("cert_expiry_warning_days", 7.0)),
        provider_retry=provider_retry,
        providers=dict(providers),
    )
    if config.keystore is None and config.secret is None:
        raise ConfigError(f"{source}: needs a [keystore] or a [secret] table")
    return config

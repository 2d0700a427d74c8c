"""Sealed, versioned KEK keyrings: KEK-A on the keystore, KEK-B on the secret server.

A keyring file contains the versions of one KEK. Each version is 32 random bytes,
sealed on its own with AES-256-GCM. The file is JSON, mode 0600:

    {"format": "splitkey-keyring", "format_version": 1,
     "purpose": "kek-a", "deployment": "splitkey.test",
     "kdf": {"algorithm": "argon2id", "salt": <base64>,
             "time_cost": 3, "memory_cost": 65536, "parallelism": 1},
     "versions": [{"version": 1, "state": "active",
                   "nonce": <base64>, "sealed": <base64>}, ...],
     "mac": <base64>}

Argon2id turns the passphrase and salt into a 32-byte master key, and HKDF
derives two keys from it: one seals the versions, one computes "mac", an
HMAC-SHA256 over everything except the sealed blobs (purpose, deployment, KDF
parameters, every version number and state). The AAD of each sealed blob is
the canonical encoding of (purpose, deployment, version), so a blob copied to
another version, keyring or deployment fails to open, and a changed state or
parameter fails the MAC.

States: "added" (held and usable for decryption), "active" (also used for new
writes; exactly one version is active) and "retired" (sealed material removed
from the file, state kept so that errors can say "retired").

Passphrases come from a file or an environment variable (see
`splitkey.config.PassphraseSource`), never from the command line.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hmac
import json
import logging
import os
import secrets
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from splitkey.context import encode_fields, validate_deployment
from splitkey.errors import ConfigError, InvalidInputError, KeyVersionError
from splitkey.pki.files import PRIVATE_FILE_MODE, create_atomically, write_atomically
from splitkey.secret import SecretBytes

logger = logging.getLogger(__name__)

PURPOSES = ("kek-a", "kek-b")
STATES = ("added", "active", "retired")
KEK_BYTES = 32

_FORMAT = "splitkey-keyring"
_FORMAT_VERSION = 1
_KDF_ALGORITHM = "argon2id"
_SALT_BYTES = 16
_NONCE_BYTES = 12
_SEALED_BYTES = KEK_BYTES + 16  # AES-GCM appends a 16-byte tag

# Upper bounds on KDF parameters read from a file, so that an edited file
# cannot make the loader allocate or compute without limit.
_MAX_TIME_COST = 64
_MAX_MEMORY_COST_KIB = 4 * 1024 * 1024
_MAX_PARALLELISM = 64


@dataclass(frozen=True)
class Argon2Params:
    """Argon2id cost parameters; memory_cost is in KiB.

    The defaults are the second recommended option of RFC 9106 section 4
    (t=3, m=64 MiB) with one lane instead of four. Tests pass small values
    such as Argon2Params(time_cost=1, memory_cost=8, parallelism=1) to stay fast.
    """

    time_cost: int = 3
    memory_cost: int = 65536
    parallelism: int = 1

    def __post_init__(self) -> None:
        for name, value in (
            ("time_cost", self.time_cost),
            ("memory_cost", self.memory_cost),
            ("parallelism", self.parallelism),
        ):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"argon2 parameter {name} must be an integer, got {value!r}")
        if not 1 <= self.time_cost <= _MAX_TIME_COST:
            raise ConfigError(f"argon2 time_cost must be between 1 and {_MAX_TIME_COST}, got {self.time_cost}")
        if not 1 <= self.parallelism <= _MAX_PARALLELISM:
            raise ConfigError(
                f"argon2 parallelism must be between 1 and {_MAX_PARALLELISM}, got {self.parallelism}"
            )
        # Argon2 needs at least 8 KiB of memory per lane.
        if not 8 * self.parallelism <= self.memory_cost <= _MAX_MEMORY_COST_KIB:
            raise ConfigError(
                f"argon2 memory_cost must be between {8 * self.parallelism} and {_MAX_MEMORY_COST_KIB} KiB,"
                f" got {self.memory_cost}"
            )


def _coerce_params(value: Argon2Params | Mapping[str, int] | None) -> Argon2Params:
    if value is None:
        return Argon2Params()
    if isinstance(value, Argon2Params):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {"time_cost", "memory_cost", "parallelism"}
        if unknown:
            raise ConfigError(f"unknown argon2 parameters: {', '.join(sorted(unknown))}")
        return Argon2Params(**value)
    raise TypeError("argon2_params must be an Argon2Params, a mapping or None")


def generate_passphrase() -> str:
    """Return a new random passphrase: 32 random bytes as URL-safe base64 text."""
    return secrets.token_urlsafe(32)


class Keyring:
    """The unsealed versions of one KEK, in memory.

    `repr` shows no key bytes, and pickling or copying raises TypeError so that
    the KEK cannot leave the process by accident.
    """

    __slots__ = ("purpose", "deployment", "_keys", "_states")

    def __init__(self, purpose: str, deployment: str, keys: Mapping[int, bytes], states: Mapping[int, str]) -> None:
        active = [version for version, state in states.items() if state == "active"]
        if len(active) != 1:
            raise ValueError(f"a keyring needs exactly one active version, found {len(active)}")
        self.purpose = purpose
        self.deployment = deployment
        self._states = dict(sorted(states.items()))
        self._keys = {version: SecretBytes(key, f"{purpose} v{version}") for version, key in keys.items()}

    @property
    def active_version(self) -> int:
        """Version used for new writes."""
        return next(version for version, state in self._states.items() if state == "active")

    def key(self, version: int) -> bytes:
        """Return the 32-byte KEK of `version`.

        Raises KeyVersionError when the version is retired or was never in this keyring.
        """
        if self._states.get(version) == "retired":
            raise KeyVersionError(f"key version {version} is retired")
        secret = self._keys.get(version)
        if secret is None:
            raise KeyVersionError(f"key version {version} is not held by this server")
        return secret.reveal()

    def states(self) -> dict[int, str]:
        """Return the state of every version, retired ones included, by version number."""
        return dict(self._states)

    def __repr__(self) -> str:
        return (
            f"<Keyring {self.purpose} deployment={self.deployment} "
            f"active={self.active_version} versions={sorted(self._states)} redacted>"
        )

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("Keyring contains a KEK and cannot be pickled")

    def __reduce_ex__(self, protocol):
        return self.__reduce__()

    def __copy__(self):
        raise TypeError("Keyring contains a KEK and cannot be copied")

    def __deepcopy__(self, memo):
        return self.__copy__()


@dataclass
class _Version:
    version: int
    state: str
    nonce: bytes | None
    sealed: bytes | None


@dataclass
class _KeyringFile:
    purpose: str
    deployment: str
    params: Argon2Params
    salt: bytes
    versions: list[_Version]
    mac: bytes


@dataclass(frozen=True)
class _DerivedKeys:
    seal: SecretBytes
    mac: SecretBytes


def _validate_purpose(purpose: str) -> str:
    if purpose not in PURPOSES:
        raise ConfigError(f"keyring purpose must be one of {', '.join(PURPOSES)}, got {purpose!r}")
    return purpose


def _validate_deployment(deployment: str) -> str:
    try:
        return validate_deployment(deployment, "deployment (trust domain)")
    except InvalidInputError as error:
        raise ConfigError(str(error)) from None


def _validate_passphrase(passphrase: bytes) -> bytes:
    if not isinstance(passphrase, (bytes, bytearray)):
        raise TypeError("passphrase must be bytes")
    if not passphrase:
        raise ConfigError("the KEK passphrase is empty; provide a non-empty passphrase")
    return bytes(passphrase)


def _derive_keys(passphrase: bytes, salt: bytes, params: Argon2Params) -> _DerivedKeys:
    master = hash_secret_raw(
        secret=passphrase,
        salt=salt,
        time_cost=params.time_cost,
        memory_cost=params.memory_cost,
        parallelism=params.parallelism,
        hash_len=32,
        type=Type.ID,
    )

    def expand(info: bytes) -> SecretBytes:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info)
        return SecretBytes(hkdf.derive(master), "keyring subkey")

    return _DerivedKeys(seal=expand(b"splitkey keyring seal v1"), mac=expand(b"splitkey keyring mac v1"))


def _version_aad(purpose: str, deployment: str, version: int) -> bytes:
    return encode_fields(
        [_FORMAT.encode(), str(_FORMAT_VERSION).encode(), purpose.encode(), deployment.encode(), str(version).encode()]
    )


def _header_mac(keys: _DerivedKeys, data: _KeyringFile) -> bytes:
    fields = [
        f"{_FORMAT}-header".encode(),
        str(_FORMAT_VERSION).encode(),
        data.purpose.encode(),
        data.deployment.encode(),
        _KDF_ALGORITHM.encode(),
        data.salt,
        str(data.params.time_cost).encode(),
        str(data.params.memory_cost).encode(),
        str(data.params.parallelism).encode(),
    ]
    for entry in sorted(data.versions, key=lambda item: item.version):
        fields += [str(entry.version).encode(), entry.state.encode()]
    return hmac.digest(keys.mac.reveal(), encode_fields(fields), "sha256")


def _seal(keys: _DerivedKeys, data: _KeyringFile, version: int, kek: bytes) -> _Version:
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(keys.seal.reveal()).encrypt(nonce, kek, _version_aad(data.purpose, data.deployment, version))
    return _Version(version=version, state="added", nonce=nonce, sealed=sealed)


def _unseal_error(path: Path) -> ConfigError:
    return ConfigError(f"cannot unseal {path}: wrong passphrase or corrupted file")


def _open_all(path: Path, data: _KeyringFile, passphrase: bytes) -> tuple[_DerivedKeys, dict[int, bytes]]:
    """Check the MAC and unseal every held version; any failure raises the same ConfigError."""
    keys = _derive_keys(passphrase, data.salt, data.params)
    if not hmac.compare_digest(_header_mac(keys, data), data.mac):
        raise _unseal_error(path)
    opened: dict[int, bytes] = {}
    cipher = AESGCM(keys.seal.reveal())
    for entry in data.versions:
        if entry.state == "retired":
            continue
        try:
            kek = cipher.decrypt(entry.nonce, entry.sealed, _version_aad(data.purpose, data.deployment, entry.version))
        except InvalidTag:
            raise _unseal_error(path) from None
        opened[entry.version] = kek
    return keys, opened


def _b64decode(value: object, field: str, length: int, path: Path) -> bytes:
    if not isinstance(value, str):
        raise _malformed(path, f"{field} must be a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _malformed(path, f"{field} is not valid base64") from None
    if len(raw) != length:
        raise _malformed(path, f"{field} must decode to {length} bytes, got {len(raw)}")
    return raw


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _malformed(path: Path, detail: str) -> ConfigError:
    return ConfigError(f"keyring {path} is malformed: {detail}; restore it from a backup")


def _integer(value: object, field: str, path: Path) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _malformed(path, f"{field} must be an integer")
    return value


def _parse_version(item: object, path: Path) -> _Version:
    if not isinstance(item, dict):
        raise _malformed(path, "each entry of 'versions' must be an object")
    version = _integer(item.get("version"), "'version'", path)
    if version < 1:
        raise _malformed(path, f"version numbers start at 1, got {version}")
    state = item.get("state")
    if state not in STATES:
        raise _malformed(path, f"version {version} has state {state!r}, expected one of {', '.join(STATES)}")
    if state == "retired":
        if "nonce" in item or "sealed" in item:
            raise _malformed(path, f"retired version {version} still carries sealed material")
        return _Version(version=version, state=state, nonce=None, sealed=None)
    nonce = _b64decode(item.get("nonce"), f"nonce of version {version}", _NONCE_BYTES, path)
    sealed = _b64decode(item.get("sealed"), f"sealed key of version {version}", _SEALED_BYTES, path)
    return _Version(version=version, state=state, nonce=nonce, sealed=sealed)


def _parse(path: Path, raw: bytes) -> _KeyringFile:
    try:
        document = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _malformed(path, "not valid JSON") from None
    if not isinstance(document, dict):
        raise _malformed(path, "top level must be a JSON object")
    if document.get("format") != _FORMAT or document.get("format_version") != _FORMAT_VERSION:
        raise _malformed(path, f"expected format {_FORMAT!r} version {_FORMAT_VERSION}")

    purpose = document.get("purpose")
    if purpose not in PURPOSES:
        raise _malformed(path, f"'purpose' must be one of {', '.join(PURPOSES)}")
    deployment = document.get("deployment")
    try:
        validate_deployment(deployment)
    except InvalidInputError:
        raise _malformed(path, "'deployment' must be a lower-case DNS name") from None

    kdf = document.get("kdf")
    if not isinstance(kdf, dict) or kdf.get("algorithm") != _KDF_ALGORITHM:
        raise _malformed(path, f"'kdf' must be an object with algorithm {_KDF_ALGORITHM!r}")
    try:
        params = Argon2Params(
            time_cost=_integer(kdf.get("time_cost"), "kdf time_cost", path),
            memory_cost=_integer(kdf.get("memory_cost"), "kdf memory_cost", path),
            parallelism=_integer(kdf.get("parallelism"), "kdf parallelism", path),
        )
    except ConfigError as error:
        raise _malformed(path, str(error)) from None
    salt = _b64decode(kdf.get("salt"), "kdf salt", _SALT_BYTES, path)

    items = document.get("versions")
    if not isinstance(items, list) or not items:
        raise _malformed(path, "'versions' must be a non-empty list")
    versions = [_parse_version(item, path) for item in items]
    numbers = [entry.version for entry in versions]
    if len(set(numbers)) != len(numbers):
        raise _malformed(path, "a version number appears twice")
    active = [entry.version for entry in versions if entry.state == "active"]
    if len(active) != 1:
        raise _malformed(path, f"exactly one version must be active, found {len(active)}")

    mac = _b64decode(document.get("mac"), "'mac'", 32, path)
    return _KeyringFile(
        purpose=purpose, deployment=deployment, params=params, salt=salt, versions=versions, mac=mac
    )


def _serialize(data: _KeyringFile) -> bytes:
    versions = []
    for entry in sorted(data.versions, key=lambda item: item.version):
        item: dict[str, object] = {"version": entry.version, "state": entry.state}
        if entry.state != "retired":
            item["nonce"] = _b64encode(entry.nonce)
            item["sealed"] = _b64encode(entry.sealed)
        versions.append(item)
    document = {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "purpose": data.purpose,
        "deployment": data.deployment,
        "kdf": {
            "algorithm": _KDF_ALGORITHM,
            "salt": _b64encode(data.salt),
            "time_cost": data.params.time_cost,
            "memory_cost": data.params.memory_cost,
            "parallelism": data.params.parallelism,
        },
        "versions": versions,
        "mac": _b64encode(data.mac),
    }
    return (json.dumps(document, indent=2) + "\n").encode()


def _read(path: Path) -> _KeyringFile:
    try:
        raw = path.read_bytes()
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"keyring {path} does not exist; create it with init-kek") from None
    except OSError as error:
        raise ConfigError(f"cannot read keyring {path}: {error.strerror}") from None
    if stat.S_IMODE(mode) & 0o077:
        logger.warning("keyring %s is readable by group or others (mode %o); chmod 600 it", path, stat.S_IMODE(mode))
    return _parse(path, raw)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialize read-modify-write cycles on one keyring across processes.

    The lock is on a sidecar file because every write replaces the keyring's inode.
    Without it, two concurrent changes could each write back a file that lacks
    the other's new version, and a KEK in use would be lost.
    """
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _find(data: _KeyringFile, version: int) -> _Version:
    for entry in data.versions:
        if entry.version == version:
            return entry
    raise KeyVersionError(f"key version {version} is not held by this server")


def create_keyring(
    path: str | os.PathLike,
    purpose: str,
    deployment: str,
    passphrase: bytes,
    *,
    argon2_params: Argon2Params | Mapping[str, int] | None = None,
) -> None:
    """Generate a new KEK and write it as version 1, active, sealed under `passphrase`.

    Raises ConfigError if `path` already exists: overwriting a keyring would
    destroy every KEK version that existing data is wrapped under.
    """
    target = Path(path)
    _validate_purpose(purpose)
    _validate_deployment(deployment)
    passphrase = _validate_passphrase(passphrase)
    params = _coerce_params(argon2_params)
    if target.exists() or target.is_symlink():
        raise ConfigError(f"keyring {target} already exists; refusing to overwrite it")

    data = _KeyringFile(
        purpose=purpose, deployment=deployment, params=params, salt=os.urandom(_SALT_BYTES), versions=[], mac=b""
    )
    keys = _derive_keys(passphrase, data.salt, params)
    first = _seal(keys, data, 1, os.urandom(KEK_BYTES))
    first.state = "active"
    data.versions.append(first)
    data.mac = _header_mac(keys, data)
    try:
        create_atomically(target, _serialize(data), PRIVATE_FILE_MODE)
    except FileExistsError:
        raise ConfigError(f"keyring {target} already exists; refusing to overwrite it") from None
    except FileNotFoundError:
        raise ConfigError(f"cannot create keyring {target}: folder {target.parent} does not exist") from None
    logger.info("created keyring %s (%s, deployment %s), version 1 active", target, purpose, deployment)


def load_keyring(
    path: str | os.PathLike,
    passphrase: bytes,
    *,
    purpose: str | None = None,
    deployment: str | None = None,
) -> Keyring:
    """Read and unseal a keyring file.

    When `purpose` or `deployment` is given, a keyring made for another one is
    rejected, so a server cannot start with the other server's KEK by mistake.
    Raises ConfigError for a missing, malformed or mismatched file, and
    "cannot unseal <path>: wrong passphrase or corrupted file" when
    authentication fails.
    """
    target = Path(path)
    passphrase = _validate_passphrase(passphrase)
    data = _read(target)
    if purpose is not None and data.purpose != purpose:
        raise ConfigError(f"keyring {target} is for {data.purpose}, expected {purpose}")
    if deployment is not None and data.deployment != deployment:
        raise ConfigError(f"keyring {target} belongs to deployment {data.deployment}, expected {deployment}")
    if data.params.time_cost < Argon2Params().time_cost or data.params.memory_cost < Argon2Params().memory_cost:
        logger.warning("keyring %s is sealed with Argon2 parameters below the defaults", target)
    _, opened = _open_all(target, data, passphrase)
    states = {entry.version: entry.state for entry in data.versions}
    return Keyring(data.purpose, data.deployment, opened, states)


def add_version(path: str | os.PathLike, passphrase: bytes) -> int:
    """Generate a new KEK version in state "added" and return its number.

    An added version can decrypt but is not used for new writes until activated.
    """
    target = Path(path)
    passphrase = _validate_passphrase(passphrase)
    with _locked(target):
        data = _read(target)
        keys, _ = _open_all(target, data, passphrase)
        version = max(entry.version for entry in data.versions) + 1
        data.versions.append(_seal(keys, data, version, os.urandom(KEK_BYTES)))
        data.mac = _header_mac(keys, data)
        write_atomically(target, _serialize(data), PRIVATE_FILE_MODE)
    logger.info("keyring %s: added version %d", target, version)
    return version


def activate_version(path: str | os.PathLike, passphrase: bytes, version: int) -> None:
    """Make `version` the active one; the previously active version returns to "added".

    Raises KeyVersionError if the version is retired or unknown.
    """
    target = Path(path)
    passphrase = _validate_passphrase(passphrase)
    with _locked(target):
        data = _read(target)
        keys, _ = _open_all(target, data, passphrase)
        entry = _find(data, version)
        if entry.state == "retired":
            raise KeyVersionError(f"key version {version} is retired")
        if entry.state == "active":
            return
        for other in data.versions:
            if other.state == "active":
                other.state = "added"
        entry.state = "active"
        data.mac = _header_mac(keys, data)
        write_atomically(target, _serialize(data), PRIVATE_FILE_MODE)
    logger.info("keyring %s: activated version %d", target, version)


def retire_version(path: str | os.PathLike, passphrase: bytes, version: int) -> None:
    """Retire `version` and delete its sealed material from the file.

    This keyring cannot check whether stored data still uses the version; the
    caller must have re-wrapped every row first. Retiring a retired version does
    nothing. Raises KeyVersionError for the active version or an unknown one.
    """
    target = Path(path)
    passphrase = _validate_passphrase(passphrase)
    with _locked(target):
        data = _read(target)
        keys, _ = _open_all(target, data, passphrase)
        entry = _find(data, version)
        if entry.state == "retired":
            return
        if entry.state == "active":
            raise KeyVersionError(f"key version {version} is active; activate another version before retiring it")
        entry.state = "retired"
        entry.nonce = None
        entry.sealed = None
        data.mac = _header_mac(keys, data)
        write_atomically(target, _serialize(data), PRIVATE_FILE_MODE)
    logger.info("keyring %s: retired version %d", target, version)

"""The keystore's one mTLS channel to the secret server, shared by every part that calls it.

The keystore calls the secret server under its keystore identity
(spiffe://<trust-domain>/keystore/main) from the tombstone sender, the
rotation link and the audit witness. They share one `ServerChannel`, which
rebuilds the channel when the certificate files change on disk, so a renewed
keystore certificate is used without a restart.
"""

from __future__ import annotations

from client.channels import ServerChannel
from splitkey.config import Endpoint, KeystoreConfig
from splitkey.v1 import admin_pb2_grpc, audit_pb2_grpc, secret_pb2_grpc

# Days before expiry from which the keystore logs a warning about its certificate for the secret server.
CERT_EXPIRY_WARNING_DAYS = 7.0


class SecretServerStubs:
    """The three services of the secret server that the keystore calls, on one channel."""

    def __init__(self, channel):
        self.secret = secret_pb2_grpc.SecretServerStub(channel)
        self.admin = admin_pb2_grpc.SecretAdminStub(channel)
        self.audit = audit_pb2_grpc.AuditLogStub(channel)


def open_secret_channel(config: KeystoreConfig) -> ServerChannel:
    """Build the channel; its `stub` property returns a `SecretServerStubs` on the current channel."""
    endpoint = Endpoint(address=config.secret_server_address, tls=config.secret_server_tls)
    return ServerChannel("secret server", endpoint, SecretServerStubs,
                         expiry_warning_days=CERT_EXPIRY_WARNING_DAYS)

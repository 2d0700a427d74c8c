"""The keystore's admin calls to the secret server, under the keystore identity (spiffe://<td>/keystore/main)."""

from __future__ import annotations

import uuid

import grpc

from splitkey.rpc.status import error_from_rpc
from splitkey.v1 import admin_pb2

_SERVER = "secret server"


class SecretLink:
    """SecretAdmin calls the keystore makes: RewrapShares, KekVersions, RetireKekVersion.

    `channel` is the keystore's shared `ServerChannel` to the secret server,
    whose stub is a `keystore_server.secret_channel.SecretServerStubs`.
    """

    def __init__(self, channel, timeout_s: float = 10.0):
        self._channel = channel
        self._timeout_s = timeout_s

    def _call(self, method: str, request):
        try:
            return getattr(self._channel.stub.admin, method)(request, timeout=self._timeout_s)
        except grpc.RpcError as rpc_error:
            raise error_from_rpc(rpc_error, _SERVER) from None

    def rewrap_shares(self, items: list[admin_pb2.RewrapItem]) -> admin_pb2.RewrapSharesResponse:
        return self._call("RewrapShares", admin_pb2.RewrapSharesRequest(request_id=uuid.uuid4().hex, items=items))

    def kek_versions(self) -> admin_pb2.KekVersionsResponse:
        return self._call("KekVersions", admin_pb2.KekVersionsRequest())

    def retire(self, version: int) -> admin_pb2.RetireKekVersionResponse:
        return self._call(
            "RetireKekVersion",
            admin_pb2.RetireKekVersionRequest(request_id=uuid.uuid4().hex, kind="kek-b", version=version),
        )

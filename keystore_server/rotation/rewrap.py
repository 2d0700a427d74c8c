"""Re-wrap of one batch of rows, for KEK-A (local) and KEK-B (blind, through the secret server).

KEK-A: share_a is unwrapped under the row's version and wrapped again under
the target version. Only share_a is ever in the keystore's memory.

KEK-B: for each row the keystore draws a fresh random 32-byte r and sends
(context, wrap_b, r) to RewrapShares, which returns wrap(share_b XOR r)
under the secret server's active KEK-B version. The keystore wraps
share_a XOR r under the active KEK-A version. Both new shares still XOR to
the same DEK, yet neither equals its old value, so a stolen old half no
longer combines with a new one. The keystore never receives share_b and the
secret server never receives share_a, so no host forms the DEK.

Every row's MAC is checked before it is re-wrapped, so a tampered row is
reported rather than signed again.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from keystore_server.rows import RecordRow, RowMac
from splitkey import record
from splitkey.errors import SplitkeyError
from splitkey.v1 import admin_pb2

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rewrapped:
    old: RecordRow
    new: RecordRow


@dataclass(frozen=True)
class Failure:
    record_id: str
    reason: str


def _open_share_a(row: RecordRow, keyring, macs: RowMac, deployment: str) -> bytes:
    """Check the row MAC and unwrap share_a; raise SplitkeyError with a reason on failure."""
    if not macs.verify(row):
        raise SplitkeyError("row MAC check failed")
    return record.unwrap_share(keyring.key(row.kek_a_version), row.wrap_a, row.context(deployment), "share-a")


def _reason(error: SplitkeyError) -> str:
    return str(error) or type(error).__name__


def rewrap_kek_a(rows: list[RecordRow], *, keyring, macs: RowMac, deployment: str, target: int):
    """Return (re-wrapped rows, failures) for moving `rows` to KEK-A version `target`."""
    done: list[Rewrapped] = []
    failures: list[Failure] = []
    target_key = keyring.key(target)
    for row in rows:
        context = row.context(deployment)
        try:
            share_a = _open_share_a(row, keyring, macs, deployment)
        except SplitkeyError as error:
            failures.append(Failure(row.record_id, _reason(error)))
            continue
        wrap_a = record.wrap_share(target_key, target, share_a, context, "share-a")
        del share_a
        new = macs.sign(row.with_changes(wrap_a=wrap_a, kek_a_version=target, row_version=row.row_version + 1))
        done.append(Rewrapped(row, new))
    return done, failures


def rewrap_kek_b(rows: list[RecordRow], *, keyring, macs: RowMac, deployment: str, link):
    """Return (re-wrapped rows, failures) after one RewrapShares call for `rows`."""
    failures: list[Failure] = []
    prepared: dict[str, tuple[RecordRow, bytes]] = {}
    items = []
    for row in rows:
        try:
            share_a = _open_share_a(row, keyring, macs, deployment)
        except SplitkeyError as error:
            failures.append(Failure(row.record_id, _reason(error)))
            continue
        r = os.urandom(record.SHARE_BYTES)
        prepared[row.record_id] = (row, record.xor_bytes(share_a, r))
        del share_a
        items.append(admin_pb2.RewrapItem(context=row.context(deployment).to_proto(), wrap_b=row.wrap_b, r=r))
    if not items:
        return [], failures

    response = link.rewrap_shares(items)
    active_a = keyring.active_version
    active_key = keyring.key(active_a)
    done: list[Rewrapped] = []
    for result in response.results:
        entry = prepared.pop(result.record_id, None)
        if entry is None:
            _logger.error("RewrapShares returned record %s, which was not in the batch", result.record_id)
            continue
        row, new_share_a = entry
        if result.error:
            failures.append(Failure(row.record_id, result.error))
            continue
        try:
            if record.wrap_version(result.wrap_b) != result.kek_b_version:
                raise SplitkeyError("version in the returned wrap_b header differs from kek_b_version")
        except SplitkeyError as error:
            failures.append(Failure(row.record_id, _reason(error)))
            continue
        wrap_a = record.wrap_share(active_key, active_a, new_share_a, row.context(deployment), "share-a")
        new = macs.sign(
            row.with_changes(
                wrap_a=wrap_a,
                wrap_b=result.wrap_b,
                kek_a_version=active_a,
                kek_b_version=result.kek_b_version,
                row_version=row.row_version + 1,
            )
        )
        done.append(Rewrapped(row, new))
    for record_id in prepared:
        failures.append(Failure(record_id, "missing from the RewrapShares reply"))
    return done, failures

"""SetAccess and ListAccess, the admin RPCs for revoke and deny rules, shared by both servers.

Both admin servicers serve the same two methods over their own rule table
(`splitkey.access_rules.AccessRules`, keyed from KEK-A on the keystore and
from KEK-B on the secret server), so the handlers live here once.
"""

from __future__ import annotations

from splitkey import validation as validate
from splitkey.access_rules import AccessRules, Rule
from splitkey.rpc.guard import current_identity, note_audit
from splitkey.v1 import admin_pb2


def rule_message(rule: Rule) -> admin_pb2.AccessRule:
    """Convert a stored rule to its protobuf message."""
    return admin_pb2.AccessRule(
        subject_kind=rule.subject_kind, subject=rule.subject, disabled=rule.disabled, reason=rule.reason,
        actor=rule.actor, updated_at_ms=rule.updated_at_ms,
    )


class AccessRuleHandlers:
    """Mixin for an admin servicer: SetAccess and ListAccess over `self._access_rules`.

    The servicer sets `_access_rules` to its server's AccessRules in its `__init__`.
    """

    _access_rules: AccessRules

    def SetAccess(self, request, context):
        identity = current_identity()
        validate.request_id(request.request_id)
        note_audit(request_id=request.request_id)
        rule = self._access_rules.set_rule(
            request.subject_kind, request.subject, disabled=request.disabled, reason=request.reason, actor=identity.uri
        )
        return rule_message(rule)

    def ListAccess(self, request, context):
        return admin_pb2.ListAccessResponse(rules=[rule_message(rule) for rule in self._access_rules.rules()])

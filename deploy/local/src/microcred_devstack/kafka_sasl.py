"""SASL/SCRAM and ACLs for `KafkaNode(..., sasl=True)`: per-institution credentials in tests.

Layout: the PLAINTEXT listener stays open for the devstack itself (its ANONYMOUS principal is
a super user, which the broker<->controller traffic on one node needs anyway once an
authorizer is on); two SCRAM-SHA-512 listeners enforce authentication and the ACLs
(StandardAuthorizer, through the audit plugin). `admin` is a super user there.
- SASL_PLAINTEXT, the providers' listener: sessions re-authenticate every
  `PROVIDER_REAUTH_MS`, so a rotated or deleted password ends an open session within it.
- SERVICES, the services' own (ADR 21): no re-authentication limit, since aiokafka cannot
  re-authenticate (KIP-368) and would be cut off every minute; the authorizer lets only
  `svc-*` principals (and super users) act there, so a provider cannot escape its limit.

aiokafka has no AlterUserScramCredentials API, so users are created with Kafka's own
`kafka.admin.ConfigCommand` (bootstrap admin via `storage format --add-scram`); ACLs go
through aiokafka's CreateAcls protocol message, which its admin client lacks a method for.
A state dir first formatted without SASL has no admin credential: create it with
create_scram_user(node, "admin", password).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aiokafka.admin import AIOKafkaAdminClient

from microcred_shared.kafka_acls import Acl, Operation, Pattern, Resource, create_acls

from ._sync import run_sync
from .kafka_jars import KafkaError, ensure_kafka_jars, java_cmd

if TYPE_CHECKING:
    from .kafka import KafkaNode

MECHANISM = "SCRAM-SHA-512"
AUTHORIZER = "ca.microcred.kafka.AuditingAuthorizer"  # StandardAuthorizer + audit (kafka_plugin)


PROVIDER_LISTENER = "SASL_PLAINTEXT"
SERVICES_LISTENER = "SERVICES"
PROVIDER_REAUTH_MS = 60_000
SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule required;"


def sasl_properties(admin_user: str, admin_password: str) -> dict[str, str]:
    """Broker settings added to server.properties for the two SCRAM listeners."""
    del admin_password  # the admin's credential lives in the metadata log, not in the config
    props = {
        "sasl.enabled.mechanisms": MECHANISM,
        "authorizer.class.name": AUTHORIZER,
        "super.users": f"User:{admin_user};User:ANONYMOUS",
        "allow.everyone.if.no.acl.found": "false",
        # The plugin's own rule: on this listener, only svc-* principals may act (ADR 21).
        "microcred.services.listener": SERVICES_LISTENER,
        "microcred.services.principal.prefix": "svc-",
    }
    # Kafka reads SASL settings, connections.max.reauth.ms included, per listener first
    # (`listener.name.<name>.` prefix; ChannelBuilders → SaslChannelBuilder): no global
    # limit, one on the providers' listener, explicitly none on the services'.
    reauth = {PROVIDER_LISTENER: str(PROVIDER_REAUTH_MS), SERVICES_LISTENER: "0"}
    for listener, limit in reauth.items():
        prefix = f"listener.name.{listener.lower()}."
        props[prefix + "sasl.enabled.mechanisms"] = MECHANISM
        # A server-side login module entry is required per listener and mechanism, even
        # though SCRAM servers check credentials against the metadata log.
        props[prefix + f"{MECHANISM.lower()}.sasl.jaas.config"] = SCRAM_LOGIN
        props[prefix + "connections.max.reauth.ms"] = limit
    return props


def scram_format_args(admin_user: str, admin_password: str) -> list[str]:
    """`storage format` arguments that create the admin's SCRAM credential at bootstrap."""
    return ["--add-scram", f"{MECHANISM}=[name={admin_user},password={admin_password}]"]


def create_scram_user(node: KafkaNode, user: str, password: str) -> None:
    """Create (or reset) a SCRAM-SHA-512 user through the open PLAINTEXT listener."""
    if not node.sasl:
        raise KafkaError("create_scram_user needs KafkaNode(..., sasl=True)")
    for text in (user, password):
        if any(c in text for c in ",=[]"):  # ConfigCommand's own list syntax
            raise ValueError("SCRAM user names and passwords may not contain , = [ ]")
    cmd = java_cmd(
        ensure_kafka_jars(),
        "kafka.admin.ConfigCommand",
        "--bootstrap-server", node.bootstrap,
        "--alter", "--entity-type", "users", "--entity-name", user,
        "--add-config", f"{MECHANISM}=[iterations=4096,password={password}]",
        log_dir=node.log_dir,
    )  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise KafkaError(f"creating SCRAM user {user} failed:\n{result.stdout}{result.stderr}")


def sasl_client_options(user: str, password: str) -> dict[str, Any]:
    """aiokafka client keyword arguments for the SASL listener."""
    return {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": MECHANISM,
        "sasl_plain_username": user,
        "sasl_plain_password": password,
    }


async def add_acls(
    bootstrap: str,
    principal: str,
    resource: Resource,
    name: str,
    operations: Iterable[Operation],
    *,
    pattern: Pattern = Pattern.LITERAL,
    allow: bool = True,
    **client_options: Any,
) -> None:
    """Grant (or deny) `principal` (e.g. "User:alice") operations on one resource.

    Use the PLAINTEXT bootstrap (super user) or admin credentials in client_options.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options)
    try:
        await admin.start()
        await create_acls(admin, principal, [Acl(resource, name, pattern, op) for op in operations],
                          allow=allow)
    except RuntimeError as exc:
        raise KafkaError(str(exc)) from exc
    finally:
        await admin.close()


def add_acls_sync(
    bootstrap: str,
    principal: str,
    resource: Resource,
    name: str,
    operations: Iterable[Operation],
    **kwargs: Any,
) -> None:
    run_sync(add_acls(bootstrap, principal, resource, name, list(operations), **kwargs))

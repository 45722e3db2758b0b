"""Names and defaults of the local stack (see docs/architecture.md for the contracts)."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path

SERVICES: tuple[str, ...] = ("assessment", "issuance", "registry", "notify")
DEFAULT_HTTP_PORTS: dict[str, int] = {
    "assessment": 8101,
    "issuance": 8102,
    "registry": 8103,
    "notify": 8104,
}
DEFAULT_KAFKA_PORT = 9092  # the documented local default, so tools work without any env
REPO_ROOT = Path(__file__).resolve().parents[4]  # deploy/local/src/microcred_devstack/..
SEED_FILE = REPO_ROOT / "deploy" / "seed" / "providers.json"


def database_name(service: str) -> str:
    return f"microcred_{service}"


def default_state_dir() -> Path:
    return Path(os.environ.get("MICROCRED_STATE_DIR") or REPO_ROOT / ".state").resolve()


def topic_lists() -> tuple[list[str], list[str]]:
    """(all topics, compacted topics) from microcred_shared.contract.topics; empty before it exists.

    The import is guarded so that the devstack works (infra only) in a tree where the shared
    package lacks the module, e.g. while it is being written.
    """
    try:
        from microcred_shared.contract import topics
    except ImportError:
        return [], []
    names = list(getattr(topics, "all_topics", list)())
    compacted = list(getattr(topics, "compacted_topics", list)())
    return names, compacted


def _kept_secret(state_dir: Path, name: str, make: Callable[[], str]) -> str:
    """A random local secret, made once per state dir (mode 0600) and reused after: keys
    must survive `down`/`up`, or what one run encrypted would not decrypt in the next."""
    path = state_dir / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(make() + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def _key32() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def key_encryption_key(state_dir: Path) -> str:
    """MICROCRED_KEY_ENCRYPTION_KEY (issuer private keys at rest): base64url of 32 bytes."""
    return _kept_secret(state_dir, "key-encryption-key", _key32)


def notify_secret_key(state_dir: Path) -> str:
    """MICROCRED_NOTIFY_SECRET_KEY (webhook signing secrets at rest): base64url of 32 bytes."""
    return _kept_secret(state_dir, "notify-secret-key", _key32)


def trust_signing_key(state_dir: Path) -> str:
    """MICROCRED_TRUST_SIGNING_KEY (the trust list's federation statements): base64url of an
    Ed25519 seed, 32 bytes."""
    return _kept_secret(state_dir, "trust-signing-key", _key32)


def operator_token(state_dir: Path) -> str:
    """MICROCRED_OPERATOR_TOKEN for the admin endpoints."""
    return _kept_secret(state_dir, "operator-token", lambda: secrets.token_urlsafe(24))


def service_token(state_dir: Path) -> str:
    """MICROCRED_SERVICE_TOKEN: what the registry presents on issuance's internal endpoint
    (holder-bound copies for wallets: the VC-API exchange and OpenID4VCI, ADR 31)."""
    return _kept_secret(state_dir, "service-token", lambda: secrets.token_urlsafe(32))


def stack_settings(
    bootstrap: str,
    database_url: str,
    http_ports: Mapping[str, int],
    state_dir: Path,
    base_env: Mapping[str, str],
) -> dict[str, str]:
    """The settings every service gets from the stack; what the developer set explicitly wins
    for the ones with a meaningful local override (public URL, key, seed file).

    The registry serves its public origin over TLS with the state dir's own CA (did:web is
    https only, ADR 22): see `tls`."""
    from . import tls

    certs = tls.ensure(state_dir)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "DATABASE_URL": database_url,
        "MICROCRED_PUBLIC_BASE_URL": f"https://127.0.0.1:{http_ports['registry']}",
        "MICROCRED_REGISTRY_TLS_CERTFILE": str(certs.server_cert),
        "MICROCRED_REGISTRY_TLS_KEYFILE": str(certs.server_key),
        "MICROCRED_KEY_ENCRYPTION_KEY": key_encryption_key(state_dir),
        "MICROCRED_OPERATOR_TOKEN": operator_token(state_dir),
        "MICROCRED_NOTIFY_SECRET_KEY": notify_secret_key(state_dir),
        "MICROCRED_TRUST_SIGNING_KEY": trust_signing_key(state_dir),
        "MICROCRED_SERVICE_TOKEN": service_token(state_dir),
        "MICROCRED_ISSUANCE_URL": f"http://127.0.0.1:{http_ports['issuance']}",
    }
    env.update({f"MICROCRED_{n.upper()}_HTTP_PORT": str(p) for n, p in http_ports.items()})
    if SEED_FILE.exists():
        env["MICROCRED_SEED_FILE"] = str(SEED_FILE)
    for key in ("MICROCRED_PUBLIC_BASE_URL", "MICROCRED_KEY_ENCRYPTION_KEY", "MICROCRED_SEED_FILE",
                "MICROCRED_OPERATOR_TOKEN", "MICROCRED_NOTIFY_SECRET_KEY",
                "MICROCRED_TRUST_SIGNING_KEY"):
        if key in base_env:
            env[key] = base_env[key]
    return env


def int_env(env: Mapping[str, str], key: str) -> int | None:
    value = env.get(key, "").strip()
    return int(value) if value else None

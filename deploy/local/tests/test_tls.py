"""The devstack's own CA: made once per state dir, keys private, and a real TLS handshake
to 127.0.0.1 and localhost succeeds when (and only when) the client trusts that CA."""

from __future__ import annotations

import socket
import ssl
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from microcred_devstack import tls


def _handshake(files: tls.TlsFiles, host: str, cafile: Path | None) -> str:
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(files.server_cert, files.server_key)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls_conn:
                    tls_conn.sendall(b"ok")
            except (ssl.SSLError, OSError):
                pass

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        client_ctx = ssl.create_default_context(cafile=str(cafile) if cafile else None)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                client_ctx.wrap_socket(raw, server_hostname=host) as conn:
            data = conn.recv(2).decode()
        thread.join(5)
        return data


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_client_that_trusts_the_stacks_ca_talks_tls_to_the_registry_certificate(
        tmp_path, host):
    files = tls.ensure(tmp_path)
    assert _handshake(files, host, files.ca_cert) == "ok"


def test_a_client_that_does_not_trust_the_ca_is_refused(tmp_path):
    files = tls.ensure(tmp_path)
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(files, "127.0.0.1", None)


def test_the_ca_is_made_once_per_state_dir_and_its_keys_are_private(tmp_path):
    first = tls.ensure(tmp_path)
    ca, server = first.ca_cert.read_bytes(), first.server_cert.read_bytes()
    again = tls.ensure(tmp_path)
    assert again.ca_cert.read_bytes() == ca and again.server_cert.read_bytes() == server
    for key in (first.server_key, first.ca_cert.with_name("ca-key.pem")):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(first.ca_cert.parent.stat().st_mode) == 0o700
    other = tls.ensure(tmp_path / "other")
    assert other.ca_cert.read_bytes() != ca  # one CA per state dir


def test_a_server_certificate_near_its_end_is_renewed_under_the_same_ca(tmp_path):
    first = tls.ensure(tmp_path)
    ca, old = first.ca_cert.read_bytes(), first.server_cert.read_bytes()
    later = datetime.now(UTC) + timedelta(days=tls.SERVER_DAYS - 10)
    renewed = tls.ensure(tmp_path, now=later)
    assert renewed.ca_cert.read_bytes() == ca and renewed.server_cert.read_bytes() != old
    cert = x509.load_pem_x509_certificate(renewed.server_cert.read_bytes())
    assert cert.not_valid_after_utc > later + timedelta(days=300)

"""The local stack's own certificate authority, one per state dir, for the registry's HTTPS.

did:web is https only (ADR 22), so the registry serves its public origin over TLS even on a
developer's machine. `ensure` makes, once per state dir, a CA (10 years) and a server
certificate it signs for 127.0.0.1 and localhost (397 days, renewed when less than 30 days
are left or when the CA changed); private keys are written 0600. Nothing is added to the
system's trust store: whoever calls the registry trusts `ca.pem` explicitly (httpx
`verify=`, `SSL_CERT_FILE`, `curl --cacert`, Node's `NODE_EXTRA_CA_CERTS`).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVER_DAYS = 397  # what browsers accept for a server certificate
RENEW_BEFORE = timedelta(days=30)
SERVER_NAMES = ("localhost",)
SERVER_IPS = ("127.0.0.1",)


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path

    def spki_pin(self) -> str:
        """base64 sha256 of the server key (Chromium's --ignore-certificate-errors-spki-list:
        trusting exactly this certificate, for browser tests)."""
        cert = x509.load_pem_x509_certificate(self.server_cert.read_bytes())
        spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def files(state_dir: Path) -> TlsFiles:
    tls = state_dir / "tls"
    return TlsFiles(tls / "ca.pem", tls / "registry.pem", tls / "registry-key.pem")


def ensure(state_dir: Path, now: datetime | None = None) -> TlsFiles:
    """The CA and the registry's certificate, made when missing or due for renewal."""
    now = now or datetime.now(UTC)
    out = files(state_dir)
    ca_key_file = out.ca_cert.with_name("ca-key.pem")
    out.ca_cert.parent.mkdir(parents=True, exist_ok=True)
    out.ca_cert.parent.chmod(0o700)
    if not (out.ca_cert.exists() and ca_key_file.exists()) or _expiring(out.ca_cert, now):
        key = ec.generate_private_key(ec.SECP256R1())
        _write_key(ca_key_file, key)
        _write(out.ca_cert, _ca_certificate(key, state_dir, now), 0o644)
        out.server_cert.unlink(missing_ok=True)  # signed by the old CA: make it anew
    ca_key = serialization.load_pem_private_key(ca_key_file.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(out.ca_cert.read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    if (not out.server_cert.exists() or not out.server_key.exists()
            or _expiring(out.server_cert, now) or not _issued_by(out.server_cert, ca_cert)):
        key = ec.generate_private_key(ec.SECP256R1())
        _write_key(out.server_key, key)
        _write(out.server_cert, _server_certificate(key, ca_key, ca_cert, now), 0o644)
    return out


def _ca_certificate(key: ec.EllipticCurvePrivateKey, state_dir: Path,
                    now: datetime) -> bytes:
    tag = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:8]
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "microcred devstack"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"microcred local CA {tag}")])
    public = key.public_key()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(public).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def _server_certificate(key: ec.EllipticCurvePrivateKey, ca_key: ec.EllipticCurvePrivateKey,
                        ca_cert: x509.Certificate, now: datetime) -> bytes:
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in SERVER_NAMES]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVER_IPS]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                        "microcred registry (local)")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=SERVER_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def _expiring(path: Path, now: datetime) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return True
    return cert.not_valid_after_utc - now < RENEW_BEFORE


def _issued_by(path: Path, ca: x509.Certificate) -> bool:
    try:
        x509.load_pem_x509_certificate(path.read_bytes()).verify_directly_issued_by(ca)
    except (OSError, ValueError, TypeError, Exception):  # noqa: BLE001 - any doubt: re-issue
        return False
    return True


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    _write(path, key.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()), 0o600)


def _write(path: Path, data: bytes, mode: int) -> None:
    # Created with its final mode (a key is never readable by others, not even briefly),
    # then moved into place so a reader never sees half a file.
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    tmp.replace(path)

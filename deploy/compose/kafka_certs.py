"""Docker Compose's one-shot `kafka-certs`: a private CA and the broker's TLS certificate.

    python kafka_certs.py CA_DIR TLS_DIR [--owner UID:GID] [--hosts kafka,localhost,127.0.0.1]

Writes CA_DIR/ca.crt (the CA every client trusts: MICROCRED_KAFKA_SSL_CAFILE), and, readable
only by the broker's user (`--owner`), TLS_DIR/broker.p12 (the broker's key and certificate
chain, a PKCS#12 key store) and TLS_DIR/broker-key.properties (`password=` the store's random
password, which the broker reads with Kafka's FileConfigProvider). PKCS#12 rather than a PEM
file: Kafka wants a PEM key store's key encrypted, and Java cannot read the PBES2 encryption
of an encrypted PKCS#8 PEM ("PBES2 SecretKeyFactory not available"). The CA's own
key is never written: a new certificate means a new CA, made by deleting the files. Does
nothing when they exist, so every `docker compose up` can run it.

Runs in a service image, which has `cryptography` (microcred_shared needs it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import secrets
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_FOR = dt.timedelta(days=825)  # the longest a browser-era CA/B rule accepts; renew by rerun
DEFAULT_HOSTS = ("kafka", "localhost", "127.0.0.1")


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "microcred compose"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _san(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def make(hosts: list[str], key_password: str,
         now: dt.datetime | None = None) -> tuple[bytes, bytes]:
    """(CA certificate PEM, broker PKCS#12 key store protected by key_password)."""
    now = now or dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("microcred compose Kafka CA")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + VALID_FOR)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(hosts[0])).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + VALID_FOR)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_san(hosts), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    store = pkcs12.serialize_key_and_certificates(
        b"broker", key, cert, [ca],
        serialization.BestAvailableEncryption(key_password.encode()))
    return ca.public_bytes(serialization.Encoding.PEM), store


def _write(path: Path, data: bytes, mode: int, owner: tuple[int, int] | None) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    if owner is not None:
        os.chown(tmp, *owner)
    os.chmod(tmp, mode)
    tmp.replace(path)  # whole or not at all


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ca_dir", type=Path)
    parser.add_argument("tls_dir", type=Path)
    parser.add_argument("--owner", help="UID:GID of the broker's user (owns broker.p12)")
    parser.add_argument("--hosts", default=",".join(DEFAULT_HOSTS),
                        help="names and addresses the broker is reached at (first: its name)")
    args = parser.parse_args(argv)
    ca_file, broker_file = args.ca_dir / "ca.crt", args.tls_dir / "broker.p12"
    password_file = args.tls_dir / "broker-key.properties"
    if ca_file.is_file() and broker_file.is_file() and password_file.is_file():
        print(f"kafka-certs: {ca_file} and {broker_file} exist; nothing to do")
        return 0
    owner = None
    if args.owner:
        uid, gid = (int(x) for x in args.owner.split(":"))
        owner = (uid, gid)
    password = secrets.token_urlsafe(24)
    ca_pem, store = make([h.strip() for h in args.hosts.split(",") if h.strip()], password)
    args.ca_dir.mkdir(parents=True, exist_ok=True)
    args.tls_dir.mkdir(parents=True, exist_ok=True)
    _write(password_file, f"password={password}\n".encode(), 0o400, owner)
    _write(broker_file, store, 0o400, owner)
    _write(ca_file, ca_pem, 0o444, None)
    print(f"kafka-certs: wrote {ca_file} and {broker_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

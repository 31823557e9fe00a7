"""TLS material for tests, made with the `cryptography` package: a CA, a server certificate for
localhost and 127.0.0.1 signed by it, a client certificate (its key encrypted, and the same key
unencrypted), and a second CA that signed nothing here.

The server certificate and key serve a Kafka broker as well as a Python TLS server: Apache Kafka
reads PEM stores (`ssl.keystore.type=PEM`) from `server_keystore`, its unencrypted key followed
by its certificate chain.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

KEY_PASSWORD = "key-pass-Ω"  # noqa: S105 - a test key's password
CA_NAME = "monitor test CA"
CLIENT_NAME = "monitor-client"


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    server_keystore: Path  # the server's key, then its certificate and the CA's (Kafka's PEM keystore)
    client_cert: Path
    client_key: Path  # encrypted with KEY_PASSWORD
    client_plain_key: Path  # the same key, unencrypted
    other_ca: Path  # a CA that signed nothing here


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, issuer_key: ec.EllipticCurvePrivateKey,
                 *, ca: bool = False, hosts: tuple[str, ...] = ()) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(h) if not h[0].isdigit() else x509.IPAddress(ipaddress.ip_address(h)) for h in hosts]),
            critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, *items: x509.Certificate | ec.EllipticCurvePrivateKey, password: str | None = None) -> Path:
    parts = []
    for item in items:
        if isinstance(item, x509.Certificate):
            parts.append(item.public_bytes(serialization.Encoding.PEM))
        else:
            encryption: serialization.KeySerializationEncryption = (
                serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption())
            parts.append(item.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    path.write_bytes(b"".join(parts))
    return path


def make_pki(folder: Path) -> Pki:
    """Fresh keys and certificates (valid from five minutes ago for a day), written into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, other_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(4))
    ca = _certificate(CA_NAME, ca_key, CA_NAME, ca_key, ca=True)
    other = _certificate("another CA", other_key, "another CA", other_key, ca=True)
    server = _certificate("kafka-1", server_key, CA_NAME, ca_key, hosts=("localhost", "127.0.0.1"))
    client = _certificate(CLIENT_NAME, client_key, CA_NAME, ca_key)
    return Pki(ca=_write(folder / "ca.pem", ca), server_cert=_write(folder / "server.pem", server),
               server_key=_write(folder / "server.key", server_key),
               server_keystore=_write(folder / "server-keystore.pem", server_key, server, ca),
               client_cert=_write(folder / "client.pem", client),
               client_key=_write(folder / "client.key", client_key, password=KEY_PASSWORD),
               client_plain_key=_write(folder / "client-plain.key", client_key),
               other_ca=_write(folder / "other-ca.pem", other))

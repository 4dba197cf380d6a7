"""TLS material: self-signed certificates for listeners and the SSL contexts built from them."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def write_self_signed(cert_path: Path, key_path: Path, hostnames: list[str], days: int = 825) -> None:
    """Write a fresh ECDSA P-256 key and a self-signed certificate valid for `hostnames`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0] if hostnames else "hoop-tui")])
    alt_names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_path), str(key_path))
    return context


def ensure_listener_certificate(
    state_dir: Path, cert: Path | None, key: Path | None, hostnames: list[str]
) -> tuple[Path, Path]:
    """The configured certificate, or a self-signed one kept in the state dir (made on first use)."""
    if cert is not None and key is not None:
        return cert, key
    tls_dir = state_dir / "tls"
    cert_path, key_path = tls_dir / "gateway.crt", tls_dir / "gateway.key"
    if not (cert_path.exists() and key_path.exists()):
        tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_self_signed(cert_path, key_path, hostnames)
    return cert_path, key_path


def upstream_context(sslmode: str, root_cert: Path | None) -> ssl.SSLContext:
    """libpq's sslmode semantics: require encrypts without verifying; verify-ca/verify-full verify."""
    if sslmode in ("verify-ca", "verify-full"):
        context = ssl.create_default_context(cafile=str(root_cert) if root_cert else None)
        context.check_hostname = sslmode == "verify-full"
        return context
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context

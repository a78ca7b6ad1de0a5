"""Throwaway X.509 material for TLS tests: a CA, a server cert and client certs.

Everything is generated per test run into a temporary directory, so no key ever
lives in the repository.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_ATTRS = {
    "CN": NameOID.COMMON_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "C": NameOID.COUNTRY_NAME,
    "L": NameOID.LOCALITY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "DC": NameOID.DOMAIN_COMPONENT,
    "SERIALNUMBER": NameOID.SERIAL_NUMBER,
    "EMAIL": NameOID.EMAIL_ADDRESS,
}


@dataclass(frozen=True)
class Pair:
    """A certificate and its private key, as PEM files."""

    cert: str
    key: str


@dataclass(frozen=True)
class Authority:
    """A CA able to issue certificates into ``directory``."""

    directory: Path
    cert_path: str
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def issue(
        self,
        name: str,
        subject: list[tuple[str, str]] | None = None,
        *,
        emails: tuple[str, ...] = (),
        dns: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
        uris: tuple[str, ...] = (),
        server: bool = False,
    ) -> Pair:
        """A leaf certificate; ``subject`` is written in the given order, e.g.
        ``[("O", "acme"), ("CN", "bob")]``."""
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = [x509.RFC822Name(e) for e in emails]
        sans += [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        sans += [x509.UniformResourceIdentifier(u) for u in uris]
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = _builder(_name(subject or []), self.cert.subject, key).add_extension(
            x509.BasicConstraints(ca=False, path_length=None), critical=True
        ).add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return _write(self.directory, name, cert, key)


def _name(subject: list[tuple[str, str]]) -> x509.Name:
    return x509.Name([x509.NameAttribute(_ATTRS[k], v) for k, v in subject])


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def _write(
    directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> Pair:
    cert_path = directory / f"{name}-cert.pem"
    key_path = directory / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return Pair(str(cert_path), str(key_path))


def make_ca(directory: Path, name: str = "ca") -> Authority:
    """A self-signed CA whose certificate is written to ``<directory>/<name>-cert.pem``."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name([("O", "Jetport Test"), ("CN", f"Jetport Test {name}")])
    cert = (
        _builder(subject, subject, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pair = _write(directory, name, cert, key)
    return Authority(directory, pair.cert, cert, key)


@dataclass(frozen=True)
class TestPKI:
    """A CA plus a server certificate valid for 127.0.0.1 and localhost."""

    __test__ = False  # not a pytest class

    ca: Authority
    server: Pair

    @property
    def ca_file(self) -> str:
        return self.ca.cert_path

    def client(self, name: str, subject: list[tuple[str, str]] | None = None, **sans) -> Pair:
        """A client certificate signed by the CA (see :meth:`Authority.issue`)."""
        return self.ca.issue(name, subject, **sans)


def make_pki(directory: Path) -> TestPKI:
    """A fresh CA and server certificate written into ``directory``."""
    ca = make_ca(directory)
    server = ca.issue(
        "server", [("CN", "localhost")], dns=("localhost",), ips=("127.0.0.1",), server=True
    )
    return TestPKI(ca, server)

"""Certificates and keys for the dev cluster, generated fresh for every cluster directory.

ECDSA P-256 keys keep generation fast (a cold start signs six certificates).
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

from kubeserve.devcluster.addresses import API_SERVICE_IP

VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


class ClusterPKI:
    """A cluster CA that signs the serving certificate and one client certificate per identity."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = _name("kubeserve-dev-ca")
        self._ca_cert = (
            self._builder(ca_name, self._ca_key.public_key())
            .issuer_name(ca_name)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._ca_key, hashes.SHA256())
        )
        self.ca = self._write("ca", self._ca_cert, self._ca_key)

    def _builder(self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._now)
            .not_valid_after(self._now + VALIDITY)
        )

    def _write(self, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> KeyPair:
        pair = KeyPair(self.directory / f"{stem}.crt", self.directory / f"{stem}.key")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pair.key.write_bytes(_key_pem(key))
        pair.key.chmod(0o600)
        return pair

    def _issue(
        self,
        stem: str,
        subject: x509.Name,
        usage: x509.ObjectIdentifier,
        sans: list[x509.GeneralName] | None = None,
    ) -> KeyPair:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            self._builder(subject, key.public_key())
            .issuer_name(self._ca_cert.subject)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return self._write(stem, builder.sign(self._ca_key, hashes.SHA256()), key)

    def serving(self, stem: str, host_ip: str = "127.0.0.1") -> KeyPair:
        """The API server's certificate, valid for loopback, the address it binds and the in-cluster names."""
        dns = [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns]
        sans += [
            x509.IPAddress(ipaddress.ip_address(ip))
            for ip in dict.fromkeys(("127.0.0.1", host_ip, API_SERVICE_IP))
        ]
        return self._issue(stem, _name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, sans)

    def node_serving(self, node: str, ip: str) -> KeyPair:
        """kubelet's serving certificate, for its node name and InternalIP (which the API server dials)."""
        sans: list[x509.GeneralName] = [x509.DNSName(node), x509.IPAddress(ipaddress.ip_address(ip))]
        return self._issue(f"kubelet-{node}", _name(node), ExtendedKeyUsageOID.SERVER_AUTH, sans)

    def client(self, stem: str, user: str, group: str | None = None) -> KeyPair:
        return self._issue(stem, _name(user, group), ExtendedKeyUsageOID.CLIENT_AUTH)

    def service_account_keys(self) -> KeyPair:
        """The key that signs service-account tokens; `cert` holds its public half."""
        key = ec.generate_private_key(ec.SECP256R1())
        pair = KeyPair(self.directory / "sa.pub", self.directory / "sa.key")
        pair.cert.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        pair.key.write_bytes(_key_pem(key))
        pair.key.chmod(0o600)
        return pair

"""User-name candidates from a client certificate, as nats-server derives them.

Kept apart from :mod:`jetport.core.tls` because cryptography's x509 costs 10 MB of RSS:
it is imported only once a client presents a certificate.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

from jetport.core.tls import DN, RDN, Attribute, CertDN

# The attribute types each renderer knows; anything else makes the DN unusable (ldap)
# or is left out of the text (Go's pkix, which renders from its parsed fields).
_LDAP_TYPES = {
    NameOID.COMMON_NAME: "CN",
    NameOID.SERIAL_NUMBER: "SERIALNUMBER",
    NameOID.COUNTRY_NAME: "C",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.STREET_ADDRESS: "STREET",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.POSTAL_CODE: "POSTALCODE",
    NameOID.DOMAIN_COMPONENT: "DC",
}
# Go's pkix.Name.ToRDNSequence order, before the string reverses it.
_PKIX_LISTS = (
    (NameOID.COUNTRY_NAME, "C"),
    (NameOID.STATE_OR_PROVINCE_NAME, "ST"),
    (NameOID.LOCALITY_NAME, "L"),
    (NameOID.STREET_ADDRESS, "STREET"),
    (NameOID.POSTAL_CODE, "POSTALCODE"),
    (NameOID.ORGANIZATION_NAME, "O"),
    (NameOID.ORGANIZATIONAL_UNIT_NAME, "OU"),
)
_PKIX_SINGLES = ((NameOID.COMMON_NAME, "CN"), (NameOID.SERIAL_NUMBER, "SERIALNUMBER"))


def _pkix_escape(value: str) -> str:
    raw = value.encode()
    out = []
    pos = 0
    for c in value:
        size = len(c.encode())
        if c in ',+"\\<>;' or (c == " " and pos in (0, len(raw) - 1)) or (c == "#" and pos == 0):
            out.append("\\" + c)
        else:
            out.append(c)
        pos += size
    return "".join(out)


def _pkix_string(name: x509.Name) -> str:
    """The subject as Go's ``Subject.ToRDNSequence().String()`` prints it."""
    values: dict[x509.ObjectIdentifier, list[str]] = {}
    for attr in name:
        if isinstance(attr.value, str):
            values.setdefault(attr.oid, []).append(attr.value)
    rdns: list[list[str]] = []
    for oid, label in _PKIX_LISTS:
        if values.get(oid):
            rdns.append([f"{label}={_pkix_escape(v)}" for v in values[oid]])
    for oid, label in _PKIX_SINGLES:
        if values.get(oid) and values[oid][-1]:
            rdns.append([f"{label}={_pkix_escape(values[oid][-1])}"])
    return ",".join("+".join(rdn) for rdn in reversed(rdns))


def _subject_dn(name: x509.Name) -> DN | None:
    """The subject in RFC 4514 order, or None when it holds an unsupported attribute."""
    rdns: list[RDN] = []
    for rdn in reversed(name.rdns):
        attrs: list[Attribute] = []
        for attr in reversed(list(rdn)):
            label = _LDAP_TYPES.get(attr.oid)
            if label is None or not isinstance(attr.value, str):
                return None
            attrs.append((label, attr.value))
        if attrs:
            rdns.append(tuple(attrs))
    return DN(tuple(rdns))


def identities_from_der(der: bytes) -> list[str]:
    """The user-name candidates of a DER certificate, in nats-server's order."""
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        emails: list[str] = []
        dns: list[str] = []
        uris: list[str] = []
    else:
        emails = san.get_values_for_type(x509.RFC822Name)
        dns = san.get_values_for_type(x509.DNSName)
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    subject = cert.subject
    found: list[str] = [*emails, *dns, *uris]
    dn = _subject_dn(subject)
    if dn is not None and dn.rdns:
        found.append(CertDN(dn))
    text = _pkix_string(subject)
    dcs = [a.value if isinstance(a.value, str) else a.value.decode(errors="replace")
           for a in subject if a.oid == NameOID.DOMAIN_COMPONENT]
    if dcs:
        found.append(",".join([text, *(f"DC={v}" for v in dcs)]))
    found.append(text)
    return [f for f in found if f]  # an empty name never matches

"""What the pki role left in medinfra_paths.pki: the site CA and each issued certificate (never a key's content)."""

from __future__ import annotations

import base64
import os
import re
import socket
from collections.abc import Mapping

from .base import Json, at_root, file_facts, read_text, sorted_files, unavailable
from .tls import certificate_facts, der_children, der_oid, der_read, tbs_fields

PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----")

OID_SUBJECT_ALT_NAME = "2.5.29.17"

OID_SUBJECT_KEY_ID = "2.5.29.14"

OID_AUTHORITY_KEY_ID = "2.5.29.35"

OID_BASIC_CONSTRAINTS = "2.5.29.19"

GENERAL_NAME_TAGS = {0x81: "email", 0x82: "DNS", 0x86: "URI"}


def pem_certificates(text: str) -> list[bytes]:
    """The DER bytes of every certificate in a PEM text, in file order."""
    return [base64.b64decode("".join(body.split())) for body in PEM_CERTIFICATE.findall(text)]


def general_name(tag: int, raw: bytes) -> str:
    """One subjectAltName entry, spelled as openssl does: DNS:name, IP:address, email:..., URI:..."""
    if tag == 0x87 and len(raw) in (4, 16):
        return "IP:" + socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)
    if tag in GENERAL_NAME_TAGS:
        return f"{GENERAL_NAME_TAGS[tag]}:{raw.decode('ascii', 'replace')}"
    return f"other:{tag:#x}"


def certificate_extensions(der: bytes) -> dict[str, Json]:
    """subjectAltNames, key identifiers (hex) and the CA flag of a DER certificate."""
    facts: dict[str, Json] = {"sans": [], "subject_key_id": None, "authority_key_id": None, "is_ca": False}
    wrapper = next((field for field in tbs_fields(der)[6:] if field[0] == 0xA3), None)  # [3] extensions
    if wrapper is None:
        return facts
    _tag, list_start, list_end = der_read(der, wrapper[1])
    for _tag, ext_start, ext_end in der_children(der, list_start, list_end):
        parts = der_children(der, ext_start, ext_end)
        oid = der_oid(der[parts[0][1] : parts[0][2]])
        _tag, value_start, _end = parts[-1]  # extnValue, an OCTET STRING holding the extension's own DER
        _tag, inner_start, inner_end = der_read(der, value_start)
        if oid == OID_SUBJECT_ALT_NAME:
            facts["sans"] = [general_name(tag, der[s:e]) for tag, s, e in der_children(der, inner_start, inner_end)]
        elif oid == OID_SUBJECT_KEY_ID:
            facts["subject_key_id"] = der[inner_start:inner_end].hex()
        elif oid == OID_AUTHORITY_KEY_ID:
            key_id = next((der[s:e] for tag, s, e in der_children(der, inner_start, inner_end) if tag == 0x80), None)
            facts["authority_key_id"] = key_id.hex() if key_id is not None else None
        elif oid == OID_BASIC_CONSTRAINTS:
            flags = der_children(der, inner_start, inner_end)
            facts["is_ca"] = bool(flags) and flags[0][0] == 0x01 and der[flags[0][1]] != 0
    return facts


def certificate_file(path: str) -> dict[str, Json]:
    """Facts and extensions of the first certificate of a PEM file, or why it cannot be read."""
    text = read_text(at_root(path))
    if text is None:
        return unavailable(f"{path} not readable")
    try:
        certificates = pem_certificates(text)
        if not certificates:
            return unavailable(f"{path} holds no PEM certificate")
        return {**certificate_facts(certificates[0]), **certificate_extensions(certificates[0])}
    except (IndexError, ValueError, UnicodeDecodeError) as exc:  # binascii.Error is a ValueError
        return unavailable(f"{path}: certificate not parsed: {exc}")


def issued_by(certificate: Mapping[str, Json], ca: Mapping[str, Json] | None) -> Json:
    """Whether the CA issued the certificate: same issuer name, and same key identifier where both carry one."""
    if ca is None:
        return False
    if "unavailable" in ca:
        return unavailable("the CA certificate could not be read")
    if certificate["issuer"] != ca["subject"]:
        return False
    if certificate["authority_key_id"] and ca["subject_key_id"]:
        return bool(certificate["authority_key_id"] == ca["subject_key_id"])
    return True


def collect_pki(directory: str) -> Json:
    """The site CA certificate and every certificate the pki role issued to this host, with its key file."""
    if not os.path.isdir(at_root(directory)):
        return {"directory_present": False}
    ca_path = os.path.join(directory, "ca.crt")
    ca = certificate_file(ca_path) if os.path.exists(at_root(ca_path)) else None
    if ca is None:
        ca_facts: Json = {"present": False}
    elif "unavailable" in ca:
        ca_facts = ca
    else:
        shown = ("subject", "self_signed", "is_ca", "not_before", "not_after", "key_type", "key_bits")
        ca_facts = {"present": True, **{key: ca[key] for key in shown}}
    certificates: dict[str, Json] = {}
    for path in sorted_files(os.path.join(directory, "*.crt")):
        name = os.path.basename(path)[: -len(".crt")]
        if name == "ca":
            continue
        certificate = certificate_file(path)
        if "unavailable" in certificate:
            certificates[name] = certificate
            continue
        shown = ("subject", "issuer", "sans", "not_before", "not_after", "key_type", "key_bits")
        certificates[name] = {
            **{key: certificate[key] for key in shown},
            "issued_by_site_ca": issued_by(certificate, ca),
            "key": file_facts(os.path.join(directory, f"{name}.key")),
        }
    return {"directory_present": True, "ca": ca_facts, "certificates": certificates}


def in_pki_directory(path: Json, pki: str) -> bool:
    """Whether a configured certificate or key is a file directly in the host's PKI directory (medinfra_paths.pki,
    where role pki issues them), wherever the site put that directory."""
    return isinstance(path, str) and os.path.isabs(path) and os.path.dirname(os.path.normpath(path)) == pki


def with_pki_placement(monitoring: Json, turn: Json, pki: str) -> tuple[Json, Json]:
    """The monitoring programs' web configs and coturn's configuration, each certificate and key marked with whether
    it is in the PKI directory: the controls compare with the host's own directory, not a fixed path."""
    if isinstance(monitoring, dict):
        for program in monitoring.values():
            web = program.get("web_config") if isinstance(program, dict) else None
            if isinstance(web, dict) and "cert_file" in web:
                web["cert_file_in_pki"] = in_pki_directory(web["cert_file"], pki)
                web["key_file_in_pki"] = in_pki_directory(web.get("key_file"), pki)
    if isinstance(turn, dict) and "cert" in turn:
        turn["cert_in_pki"] = in_pki_directory(turn["cert"], pki)
        turn["pkey_in_pki"] = in_pki_directory(turn.get("pkey"), pki)
    return monitoring, turn

"""A TLS handshake with every local TCP listener, and the DER reading of the certificates they present."""

from __future__ import annotations

import socket
import threading
import warnings
from typing import TYPE_CHECKING

from .base import HOST, NOT_RECORDED, Json, safe, unavailable

if TYPE_CHECKING:  # ssl is imported only when there is a listener to probe
    import ssl


TLS_TIMEOUT = 2.0


def der_read(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at offset."""
    tag = data[offset]
    length = data[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    return tag, offset, offset + length


def der_children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    children = []
    while start < end:
        tag, content, stop = der_read(data, start)
        children.append((tag, content, stop))
        start = stop
    return children


def der_oid(raw: bytes) -> str:
    parts = [raw[0] // 40, raw[0] % 40]
    value = 0
    for byte in raw[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(str(p) for p in parts)


NAME_OIDS = {"2.5.4.3": "CN", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST"}

CURVE_BITS = {"1.2.840.10045.3.1.7": 256, "1.3.132.0.34": 384, "1.3.132.0.35": 521}


def der_name(data: bytes, start: int, end: int) -> str:
    parts = []
    for _tag, rdn_start, rdn_end in der_children(data, start, end):
        for _tag, atv_start, atv_end in der_children(data, rdn_start, rdn_end):
            (_tag, oid_start, oid_end), (_tag, value_start, value_end) = der_children(data, atv_start, atv_end)[:2]
            label = NAME_OIDS.get(der_oid(data[oid_start:oid_end]), der_oid(data[oid_start:oid_end]))
            parts.append(f"{label}={data[value_start:value_end].decode('utf-8', 'replace')}")
    return ",".join(parts)


def der_time(tag: int, raw: bytes) -> str:
    text = raw.decode()
    if tag == 0x17:  # UTCTime, two-digit year
        text = ("19" if int(text[:2]) >= 50 else "20") + text
    return f"{text[0:4]}-{text[4:6]}-{text[6:8]}T{text[8:10]}:{text[10:12]}:{text[12:14]}Z"


def tbs_fields(der: bytes) -> list[tuple[int, int, int]]:
    """The elements of a DER certificate's TBSCertificate, from the serial number on."""
    _tag, cert_start, cert_end = der_read(der, 0)
    _tag, tbs_start, tbs_end = der_children(der, cert_start, cert_end)[0]
    fields = der_children(der, tbs_start, tbs_end)
    return fields[1:] if fields[0][0] == 0xA0 else fields  # skip the explicit version


def certificate_facts(der: bytes) -> dict[str, Json]:
    """Issuer, subject, validity and key of a DER certificate, parsed without third-party code."""
    _serial, _signature, issuer, validity, subject, spki = tbs_fields(der)[:6]
    not_before, not_after = der_children(der, validity[1], validity[2])[:2]
    algorithm, public_key = der_children(der, spki[1], spki[2])[:2]
    algorithm_parts = der_children(der, algorithm[1], algorithm[2])
    algorithm_oid = der_oid(der[algorithm_parts[0][1] : algorithm_parts[0][2]])
    key_type, key_bits = "unknown", 0
    if algorithm_oid == "1.2.840.113549.1.1.1":
        key_type = "rsa"
        _tag, rsa_start, rsa_end = der_read(der, public_key[1] + 1)  # skip the BIT STRING's unused-bits byte
        modulus = der_children(der, rsa_start, rsa_end)[0]
        key_bits = int.from_bytes(der[modulus[1] : modulus[2]], "big").bit_length()
    elif algorithm_oid == "1.2.840.10045.2.1":
        key_type = "ec"
        curve = algorithm_parts[1]
        key_bits = CURVE_BITS.get(der_oid(der[curve[1] : curve[2]]), 0)
    elif algorithm_oid in ("1.3.101.112", "1.3.101.113"):
        key_type, key_bits = ("ed25519", 256) if algorithm_oid.endswith("112") else ("ed448", 456)
    issuer_name = der_name(der, issuer[1], issuer[2])
    subject_name = der_name(der, subject[1], subject[2])
    return {
        "subject": subject_name,
        "issuer": issuer_name,
        "self_signed": issuer_name == subject_name,
        "not_before": der_time(not_before[0], der[not_before[1] : not_before[2]]),
        "not_after": der_time(not_after[0], der[not_after[1] : not_after[2]]),
        "key_type": key_type,
        "key_bits": key_bits,
    }


def tls_context(maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    # Lowest security level so that weak servers are seen as they are, not refused by this client.
    context.set_ciphers("ALL:@SECLEVEL=0")
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    if maximum is not None:
        with warnings.catch_warnings():  # asking for old protocols on purpose, to see who still speaks them
            warnings.simplefilter("ignore", DeprecationWarning)
            context.maximum_version = maximum
    return context


def tls_handshake(address: str, port: int, maximum: ssl.TLSVersion | None = None) -> tuple[ssl.SSLSocket | None, str]:
    import ssl

    try:
        raw = socket.create_connection((address, port), timeout=TLS_TIMEOUT)
    except OSError as exc:
        return None, f"connect: {exc}"
    try:
        wrapped = tls_context(maximum).wrap_socket(raw)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raw.close()
        return None, f"{type(exc).__name__}: {exc}".split(" (_ssl.c", maxsplit=1)[0]
    return wrapped, ""


def probe_tls(listener: dict[str, Json]) -> dict[str, Json]:
    import ssl

    address = str({"0.0.0.0": "127.0.0.1", "::": "::1"}.get(listener["address"], listener["address"]))
    endpoint: dict[str, Json] = {
        "address": listener["address"],
        "port": listener["port"],
        "process": listener["process"],
    }
    wrapped, error = tls_handshake(address, listener["port"])
    if wrapped is None:
        endpoint.update(tls=False, reason=error)
        return endpoint
    with wrapped:
        cipher = wrapped.cipher()
        der = wrapped.getpeercert(binary_form=True)
        endpoint.update(
            tls=True,
            protocol=wrapped.version(),
            cipher=cipher[0] if cipher else "",
            cipher_bits=cipher[2] if cipher else 0,
        )
    try:
        endpoint["certificate"] = certificate_facts(der) if der else unavailable("no certificate sent")
    except (IndexError, ValueError, UnicodeDecodeError) as exc:
        endpoint["certificate"] = unavailable(f"certificate not parsed: {exc}")
    legacy, _error = tls_handshake(address, listener["port"], maximum=ssl.TLSVersion.TLSv1_1)
    endpoint["accepts_tls1_1_or_older"] = legacy is not None
    if legacy is not None:
        legacy.close()
    return endpoint


def collect_tls(sockets: Json) -> Json:
    if not isinstance(sockets, dict) or "listening" not in sockets:
        return unavailable("listening sockets unavailable")
    if HOST.root != "/":
        return unavailable(f"TLS handshakes: {NOT_RECORDED}")
    tcp = [s for s in sockets["listening"] if s["protocol"] == "tcp"]
    # sshd speaks first and never TLS: no handshake needed to know it is not a TLS endpoint.
    probed: list[dict[str, Json]] = [
        {"address": s["address"], "port": s["port"], "process": s["process"], "tls": False, "reason": "SSH"}
        for s in tcp
        if s["process"] == "sshd"
    ]
    listeners = [s for s in tcp if s["process"] != "sshd"]
    results: list[dict[str, Json]] = [{} for _listener in listeners]

    def probe(index: int) -> None:
        results[index] = safe(lambda: probe_tls(listeners[index]))

    threads = [threading.Thread(target=probe, args=(index,)) for index in range(len(listeners))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    probed.extend(r for r in results if isinstance(r, dict) and "tls" in r)
    probed.sort(key=lambda p: (p["port"], p["address"]))
    return {
        "endpoints": [p for p in probed if p["tls"]],
        "plain": [
            {"address": p["address"], "port": p["port"], "process": p["process"]} for p in probed if not p["tls"]
        ],
    }

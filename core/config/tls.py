"""The ``tls {}`` block of the client port."""

from __future__ import annotations

from jetport.core.config.keys import TLS_KEYS, TOP_LEVEL_KEYS, Entry, KeyTable, simple
from jetport.core.config.options import Options
from jetport.core.tls import min_tls_version


@TOP_LEVEL_KEYS.key("tls")
def _tls_key(opts: Options, entry: Entry) -> None:
    TLS_KEYS.apply(opts, entry.block())
    if not opts.tls_cert or not opts.tls_key:
        raise entry.error("tls needs both cert_file and key_file")
    opts.set("tls", True)


simple(TLS_KEYS, "tls_cert", "string", "cert_file")
simple(TLS_KEYS, "tls_key", "string", "key_file")
simple(TLS_KEYS, "tls_ca", "string", "ca_file")
simple(TLS_KEYS, "tls_verify", "boolean", "verify")
simple(TLS_KEYS, "tls_timeout", "seconds", "timeout")


@TLS_KEYS.key("min_version")
def _tls_min_version_key(opts: Options, entry: Entry) -> None:
    try:
        min_tls_version(entry.value)
    except ValueError as exc:
        raise entry.error(f"error parsing tls config: {exc}") from exc
    opts.set("tls_min_version", entry.value)


@TLS_KEYS.key("verify_and_map")
def _tls_map_key(opts: Options, entry: Entry) -> None:
    # As in nats-server, "true" also turns verify on; "false" leaves verify alone.
    mapped = entry.boolean()
    if mapped:
        opts.set("tls_verify", True)
    opts.set("tls_map", mapped)


_NOT_SUPPORTED: tuple[tuple[KeyTable, str, str], ...] = (
    (
        TLS_KEYS,
        "this TLS option",
        "insecure verify_cert_and_check_known_urls cipher_suites "
        "curve_preferences pinned_certs connection_rate_limit handshake_first first cert_store "
        "cert_match cert_match_by ocsp_peer certs",
    ),
)
for _table, _feature, _names in _NOT_SUPPORTED:
    _table.not_supported(_feature, *_names.split())

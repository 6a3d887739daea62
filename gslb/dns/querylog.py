"""The query log (`--query-log`, `query_log: true`; `query_log_sample: N` logs one query in N).

One line per logged query: transport, client, name, type, rcode, size, then the ECS subnet, the country the
client was located in (from the ECS subnet when there is one, else the source address) and the addresses
answered. With `--log-format json` the same values are keys (`transport`, `client`, `qname`, `qtype`,
`rcode`, `size`, `ecs`, `country`, `answers`). Everything here runs only for a logged query: the default
path pays nothing, and a sampled log pays one counter per query.
"""

from __future__ import annotations

import ipaddress
import logging

import dnslib

from gslb.dns.table import AnswerTable

query_log = logging.getLogger("gslb.query")


def _ecs(record: dnslib.DNSRecord) -> str | None:
    """The query's ECS subnet as ADDRESS/PREFIX, or None."""
    for rr in record.ar:
        if rr.rtype != dnslib.QTYPE.OPT:
            continue
        for opt in rr.rdata or ():
            if opt.code == 8 and len(opt.data) >= 4:
                family, source = int.from_bytes(opt.data[0:2], "big"), opt.data[2]
                raw = opt.data[4:]
                if family == 1:
                    address = ".".join(str(b) for b in raw.ljust(4, b"\0")[:4])
                elif family == 2:
                    address = str(ipaddress.IPv6Address(raw.ljust(16, b"\0")[:16]))
                else:
                    return None
                return f"{address}/{source}"
    return None


def _answers(out: bytes) -> list[str]:
    """The A and AAAA addresses in the answer section of a response."""
    try:
        response = dnslib.DNSRecord.parse(out)
    except Exception:  # noqa: BLE001 -- a truncated or odd response: log it without addresses
        return []
    return [str(rr.rdata) for rr in response.rr if rr.rtype in (dnslib.QTYPE.A, dnslib.QTYPE.AAAA)]


def log_query(table: AnswerTable, data: bytes, out: bytes | None, client_ip: str, tcp: bool) -> None:
    """Log one query and its response (or `dropped`); never raises."""
    transport = "tcp" if tcp else "udp"
    fields: dict = {"transport": transport, "client": client_ip}
    try:
        record = dnslib.DNSRecord.parse(data)
        q = record.q
        qname, qtype = str(q.qname), dnslib.QTYPE.get(q.qtype)
        ecs = _ecs(record)
        what = f"{qname} {qtype}"
        fields.update(qname=qname, qtype=qtype, ecs=ecs)
    except Exception:  # noqa: BLE001 -- a query log line must never fail the query
        what, ecs = f"<{len(data)} unparsable bytes>", None
    try:
        location = table.locator.locate(ecs.split("/")[0] if ecs else client_ip)
        country = location.country
    except Exception:  # noqa: BLE001 -- an address the database cannot read
        country = None
    answers = _answers(out) if out else []
    if out:
        rcode = dnslib.RCODE.get(out[3] & 0xF)
        result = f"{rcode} {len(out)} bytes"
        fields.update(rcode=rcode, size=len(out))
    else:
        result = "dropped"
        fields.update(rcode=None, size=0)
    fields.update(country=country, answers=answers)
    query_log.info("%s %s %s %s ecs=%s country=%s answers=%s", transport, client_ip, what, result, ecs or "-",
                   country or "-", ",".join(answers) or "-", extra={"fields": fields})

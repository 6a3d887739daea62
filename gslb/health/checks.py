"""One probe of one target: http, https, tcp, dns or file. Raw pass/fail plus round-trip time; the state
machine (rise/fall) lives in state.py. Shared by the DNS probers and the proxy's active checks."""

from __future__ import annotations

import asyncio
import errno
import os
import re
import ssl
import struct
import time
from dataclasses import dataclass
from functools import lru_cache

import aiohttp
import dnslib

from gslb import __version__
from gslb.config.check import EnvError, expand_env
from gslb.config.model import Check, Target
from gslb.config.registry import CHECK_TYPES
from gslb.health import extfile


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    rtt_ms: float | None          # round-trip time of the check; None when it never connected
    error: str | None = None      # e.g. "GET http://192.0.2.5:80/healthz: 503, expected 200"
    # The check failed for a reason of the prober's own (see LOCAL_ERRNOS): not evidence about the
    # endpoint, so it must not count toward fall (or rise).
    local: bool = False
    timed_out: bool = False       # the check ran out of its timeout (the prober judges whether its loop was late)
    # No evidence either way, and not the prober's fault (an address a health file does not list, with
    # `missing: keep`): the target keeps its state, the prober is not blind.
    abstain: bool = False


# Errors that say the prober itself cannot make the check: out of file descriptors or kernel memory,
# its source address is not there or its ports are used up, its own interface is down, or its own host
# refuses to send (a local firewall). ENETUNREACH and EHOSTUNREACH are not here: a router on the way
# reports them too, and then they are the endpoint's problem, seen from this region.
LOCAL_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL,
                          errno.EADDRINUSE, errno.ENETDOWN, errno.EPERM, errno.EACCES})


def is_local_error(exc: BaseException | None) -> bool:
    """Whether an exception from making a check is the prober's own fault rather than the endpoint's."""
    for _ in range(5):            # an exception, what it wraps, and their causes
        if exc is None:
            break
        if isinstance(exc, OSError) and exc.errno in LOCAL_ERRNOS:
            return True
        exc = getattr(exc, "os_error", None) or exc.__cause__
    return False


def _failed(error: str, exc: BaseException | None = None, rtt: float | None = None) -> ProbeResult:
    return ProbeResult(False, rtt, error, local=is_local_error(exc))


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _os_reason(exc: OSError) -> str:
    if exc.errno:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


def url_of(target: Target) -> str:
    check = target.check
    return f"{check.type}://{_host(target.address)}:{check.effective_port}{check.path}"


BODY_LIMIT = 65536      # a body match looks at this many bytes from the start
TCP_READ_LIMIT = 8192   # a tcp `expect:` looks at this many bytes of the reply from the start
USER_AGENT = f"gslb/{__version__}"


async def _head_of_body(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    # content.read(n) returns whatever has arrived, which can be only the first chunk of the body.
    parts: list[bytes] = []
    size = 0
    while size < limit:
        part = await resp.content.read(limit - size)
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


@lru_cache(maxsize=2)
def _ssl_context_for(verify: bool) -> ssl.SSLContext:
    # One context per setting, not per check: create_default_context loads the system CA store (about
    # a millisecond of CPU), and a context is safe to share between connections.
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _ssl_context(check: Check) -> ssl.SSLContext:
    return _ssl_context_for(check.tls_verify)


def request_headers(check: Check) -> dict[str, str]:
    """The headers an http(s) check sends, `${NAME}`s filled in from this process's environment.

    :raises EnvError: a variable is not set here (the server that loaded the zone had it).
    """
    headers = {name: expand_env(value) for name, value in check.headers}
    headers["User-Agent"] = expand_env(check.user_agent) if check.user_agent else USER_AGENT
    if check.host:
        headers["Host"] = check.host
    for name, value in headers.items():
        if "\r" in value or "\n" in value:
            raise EnvError(f"header {name}: a line break after filling in ${{...}}")
    return headers


async def _http(target: Target, session: aiohttp.ClientSession) -> ProbeResult:
    check = target.check
    url = url_of(target)
    what = f"{check.method} {url}"
    try:
        headers = request_headers(check)
    except EnvError as exc:
        return ProbeResult(False, None, f"{what}: {exc} on this prober", local=True)
    kwargs: dict = {}
    if check.type == "https":
        kwargs["ssl"] = _ssl_context(check)
        if check.sni or check.host:
            kwargs["server_hostname"] = check.sni or check.host
    start = time.monotonic()
    try:
        async with session.request(check.method, url, headers=headers, allow_redirects=False,
                                   timeout=aiohttp.ClientTimeout(total=check.timeout), **kwargs) as resp:
            rtt = (time.monotonic() - start) * 1000
            if not check.accepts(resp.status):
                expected = ", ".join(str(s) for s in check.expect)
                return ProbeResult(False, rtt, f"{what}: {resp.status}, expected {expected}")
            if check.body is not None:
                text = await _head_of_body(resp, BODY_LIMIT)
                if check.body.encode() not in text:
                    return ProbeResult(False, rtt, f"{what}: body does not contain {check.body!r}")
            return ProbeResult(True, rtt)
    except TimeoutError:
        return ProbeResult(False, None, f"{what}: timeout after {check.timeout:g} s", timed_out=True)
    except aiohttp.ClientConnectorCertificateError as exc:
        reason = getattr(exc.certificate_error, "verify_message", None) or exc.certificate_error
        return ProbeResult(False, None, f"{what}: TLS certificate not accepted: {reason}")
    except aiohttp.ClientConnectorError as exc:
        return _failed(f"{what}: {_os_reason(exc.os_error)}", exc.os_error)
    except (aiohttp.ClientError, ssl.SSLError, OSError) as exc:
        return _failed(f"{what}: {type(exc).__name__}: {exc}", exc)


HEAD_LIMIT = 65536      # a response head (status line and headers) longer than this fails the check
_PLAIN_PATH = re.compile(r"[!-~]+")     # a path that goes on the request line as it is (no quoting)
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})[ \r]")


class _HeadReader(asyncio.Protocol):
    """Sends one request and waits for the response head: what a status-only check needs."""

    __slots__ = ("buf", "done", "request", "transport")

    def __init__(self, request: bytes, done: asyncio.Future):
        self.request, self.done, self.buf = request, done, b""

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.done.done():          # the head is in: the rest (a body) is not read
            return
        self.buf += data
        if b"\r\n\r\n" in self.buf:
            self.done.set_result(self.buf)
        elif len(self.buf) > HEAD_LIMIT:
            self.done.set_exception(ValueError(f"response head longer than {HEAD_LIMIT} bytes"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(exc or ConnectionResetError("connection closed before a whole response head"))


def _lean_request(target: Target, headers: dict[str, str]) -> bytes:
    check = target.check
    port = check.effective_port
    names = {name.lower() for name in headers}
    host = "" if "host" in names else f"Host: {_host(target.address)}{'' if port == 80 else f':{port}'}\r\n"
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    accept = "" if "accept" in names else "Accept: */*\r\n"
    return f"{check.method} {check.path} HTTP/1.1\r\n{host}{lines}{accept}Connection: close\r\n\r\n".encode()


async def _lean_http(target: Target, headers: dict[str, str], source: str | None) -> ProbeResult:
    """A status-only http check without a client library: one connection, one request, the status read
    from the response head. The same results and messages as the aiohttp path at about a third of its
    CPU (no connector, resolver, happy-eyeballs or response object: a prober of 10,000 targets makes
    10,000 of these a second)."""
    check = target.check
    what = f"{check.method} {url_of(target)}"
    try:
        request = _lean_request(target, headers)
    except UnicodeEncodeError:
        return ProbeResult(False, None, f"{what}: a header is not ASCII", local=True)
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    transport = None
    start = time.monotonic()
    try:
        async with asyncio.timeout(check.timeout):
            try:
                transport, _ = await loop.create_connection(lambda: _HeadReader(request, done), target.address,
                                                            check.effective_port,
                                                            local_addr=(source, 0) if source else None)
            except OSError as exc:
                return _failed(f"{what}: {_os_reason(exc)}", exc)
            head = await done
        rtt = (time.monotonic() - start) * 1000
    except TimeoutError:
        return ProbeResult(False, None, f"{what}: timeout after {check.timeout:g} s", timed_out=True)
    except ValueError as exc:             # a source address of the other family: the prober's setup
        return ProbeResult(False, None, f"{what}: {exc}", local=True)
    except OSError as exc:
        return _failed(f"{what}: {type(exc).__name__}: {exc}", exc)
    finally:
        if transport is not None:
            transport.close()
    match = _STATUS_LINE.match(head)
    if match is None:
        first = head.split(b"\r\n", 1)[0][:64]
        return ProbeResult(False, None, f"{what}: not an HTTP/1 response: {first!r}")
    status = int(match.group(1))
    if not check.accepts(status):
        expected = ", ".join(str(s) for s in check.expect)
        return ProbeResult(False, rtt, f"{what}: {status}, expected {expected}")
    return ProbeResult(True, rtt)


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def _reply_matches(check: Check, data: bytes) -> bool:
    if check.expect_text is not None:
        return check.expect_text.encode() in data
    return _regex(check.expect_regex).search(data.decode("utf-8", "replace")) is not None   # type: ignore[arg-type]


class _NoMatch(Exception):
    """The peer stopped sending, or TCP_READ_LIMIT bytes came, without the expected reply."""

    def __init__(self, data: bytes):
        self.data = data


async def _exchange(check: Check, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """Send `send`, then read until the reply matches `expect`; the bytes read.

    :raises _NoMatch: the peer stopped sending, or TCP_READ_LIMIT bytes came, without a match."""
    if check.send:
        writer.write(check.send.encode())
        await writer.drain()
    if check.expect_text is None and check.expect_regex is None:
        return b""
    data = b""
    while len(data) < TCP_READ_LIMIT:
        part = await reader.read(TCP_READ_LIMIT - len(data))
        if not part:
            break
        data += part
        if _reply_matches(check, data):
            return data
    raise _NoMatch(data)


async def _tcp(target: Target, source: str | None) -> ProbeResult:
    check = target.check
    port = check.effective_port
    what = f"tcp connect {_host(target.address)}:{port}"
    start = time.monotonic()
    local = (source, 0) if source else None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(target.address, port, local_addr=local),
                                                check.timeout)
    except TimeoutError:
        return ProbeResult(False, None, f"{what}: timeout after {check.timeout:g} s", timed_out=True)
    except OSError as exc:
        return _failed(f"{what}: {_os_reason(exc)}", exc)
    except ValueError as exc:             # e.g. a source address of the other family: the prober's setup
        return ProbeResult(False, None, f"{what}: {exc}", local=True)
    rtt = (time.monotonic() - start) * 1000       # the connect: the network's round trip, not the service's
    try:
        if check.send or check.expect_text is not None or check.expect_regex is not None:
            what = f"tcp {_host(target.address)}:{port}"
            left = max(0.0, check.timeout - (time.monotonic() - start))
            await asyncio.wait_for(_exchange(check, reader, writer), left)
    except TimeoutError:
        wanted = check.expect_text if check.expect_text is not None else check.expect_regex
        return ProbeResult(False, rtt, f"{what}: no reply matching {wanted!r} within {check.timeout:g} s",
                           timed_out=True)
    except _NoMatch as exc:
        wanted = f"does not contain {check.expect_text!r}" if check.expect_text is not None \
            else f"does not match {check.expect_regex!r}"
        got = f"reply {exc.data[:64]!r}{'...' if len(exc.data) > 64 else ''}" if exc.data else "no reply"
        return ProbeResult(False, rtt, f"{what}: {got} {wanted}")
    except OSError as exc:
        return _failed(f"{what}: {_os_reason(exc)}", exc, rtt)
    finally:
        writer.close()
    return ProbeResult(True, rtt)


def _file(target: Target) -> ProbeResult:
    check = target.check
    what = f"health file {check.path}"
    try:
        listed, problem = extfile.lookup(check.path, target.address)
    except extfile.FileProblem as exc:
        return ProbeResult(False, None, f"{exc}", local=True)
    if listed is None:
        if check.missing == "keep":
            return ProbeResult(False, None, f"{target.address} is not in {check.path}", abstain=True)
        if check.missing == "up":
            return ProbeResult(True, None)
        return ProbeResult(False, None, f"{target.address} is not in {check.path} (missing: down)")
    if listed.up:
        return ProbeResult(True, None)
    reason = f": {listed.reason}" if listed.reason else ""
    stale = f" (the file's newer version is not used: {problem})" if problem else ""
    return ProbeResult(False, None, f"{what}:{listed.line}: {target.address} down{reason}{stale}")


class _DnsClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answer: asyncio.Future = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if not self.answer.done():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


async def _dns(target: Target, default_name: str, source: str | None) -> ProbeResult:
    check = target.check
    name = check.query or default_name
    port = check.effective_port
    what = f"dns {name} {check.query_type} @{_host(target.address)}:{port}"
    query_id = struct.unpack("!H", os.urandom(2))[0]
    query = dnslib.DNSRecord.question(name, check.query_type)
    query.header.id = query_id
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    try:
        # Inside the try: an unreachable network or a source address of the other family fails here.
        transport, protocol = await loop.create_datagram_endpoint(
            _DnsClient, remote_addr=(target.address, port), local_addr=(source, 0) if source else None)
    except OSError as exc:
        return _failed(f"{what}: {_os_reason(exc)}", exc)
    except ValueError as exc:
        return ProbeResult(False, None, f"{what}: {exc}", local=True)
    try:
        transport.sendto(query.pack())
        data = await asyncio.wait_for(protocol.answer, check.timeout)
        rtt = (time.monotonic() - start) * 1000
        reply = dnslib.DNSRecord.parse(data)
    except TimeoutError:
        return ProbeResult(False, None, f"{what}: timeout after {check.timeout:g} s", timed_out=True)
    except OSError as exc:
        return _failed(f"{what}: {exc.strerror or exc}", exc)
    except Exception as exc:  # noqa: BLE001 -- dnslib raises several types for a garbled reply
        return ProbeResult(False, None, f"{what}: bad reply: {exc}")
    finally:
        transport.close()
    if reply.header.id != query_id:
        return ProbeResult(False, rtt, f"{what}: reply with the wrong ID")
    rcode = dnslib.RCODE.get(reply.header.rcode)
    if reply.header.rcode != 0 or not reply.rr:
        return ProbeResult(False, rtt, f"{what}: {rcode} with {len(reply.rr)} answers, expected an answer")
    return ProbeResult(True, rtt)


# Each check type of gslb/config/registry.py, as (target, session, dns_name, source) -> ProbeResult.
@CHECK_TYPES.implements("http", "https")
async def _probe_http(target: Target, session: aiohttp.ClientSession | None, dns_name: str,
                      source: str | None) -> ProbeResult:
    check = target.check
    if check.type == "http" and check.body is None and _PLAIN_PATH.fullmatch(check.path):
        try:
            headers = request_headers(check)
        except EnvError as exc:
            return ProbeResult(False, None, f"{check.method} {url_of(target)}: {exc} on this prober", local=True)
        return await _lean_http(target, headers, source)
    if session is not None:
        return await _http(target, session)
    async with make_session(source) as own:
        return await _http(target, own)


@CHECK_TYPES.implements("tcp")
async def _probe_tcp(target: Target, session: object, dns_name: str, source: str | None) -> ProbeResult:
    return await _tcp(target, source)


@CHECK_TYPES.implements("file")
async def _probe_file(target: Target, session: object, dns_name: str, source: str | None) -> ProbeResult:
    return _file(target)


@CHECK_TYPES.implements("dns")
async def _probe_dns(target: Target, session: object, dns_name: str, source: str | None) -> ProbeResult:
    return await _dns(target, dns_name, source)


CHECK_TYPES.complete()


def make_session(source: str | None = None) -> aiohttp.ClientSession:
    """An HTTP client session for checks; `source` binds every connection to that local address."""
    connector = aiohttp.TCPConnector(force_close=True, limit=0, local_addr=(source, 0) if source else None)
    return aiohttp.ClientSession(connector=connector, auto_decompress=False)


async def probe(target: Target, *, session: aiohttp.ClientSession | None = None,
                dns_name: str = ".", source: str | None = None) -> ProbeResult:
    """Run target.check against target.address once. Never raises: failures are ok=False with a reason,
    and `local` when the prober itself could not make the check.

    `session` (from make_session) is reused across http/https checks; `source` is the local address
    tcp and dns checks bind to (http ones take it from the session).
    """
    try:
        return await CHECK_TYPES[target.check.type](target, session, dns_name, source)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 -- a check that raises must fail, not stop the prober
        # Every way an endpoint can fail a check is caught above; an exception left over is the
        # prober's own (a bug, or a resource it lacks), not evidence against the endpoint.
        return ProbeResult(False, None, f"{target.check.type} check of {target}: {type(exc).__name__}: {exc}",
                           local=True)

#!/usr/bin/env python3
"""The probe and fleet parts of bench/scale.py (run them from there: `python bench/scale.py probe fleet`).

    python bench/scaleprobe.py --endpoints N --port-base P --ready FILE --log FILE   (the endpoint server)

The endpoint server listens on N loopback sockets (100 ports on each of 127.3.x.y), answers every HTTP
request with 200 and logs each request's arrival (address, port, monotonic time) in binary, so the
bench can tell how late each check was against its 1 s interval without touching the prober.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PY = sys.executable
PORTS = 100                      # ports per address: N endpoints = N/100 addresses x 100 ports
SECRET = "scale-bench-secret-0123456789"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "ap-southeast-1", "sa-east-1", "eu-central-1",
           "ap-northeast-1", "ap-south-1", "ca-central-1", "af-south-1"]


def address(i: int) -> str:
    return f"127.3.{i // 250}.{i % 250 + 1}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def zone_text(endpoints: int, port_base: int) -> str:
    """One pool per port, each with endpoints on every address: N targets, checked every 1 s."""
    addresses = max(1, endpoints // PORTS)
    ports = min(PORTS, endpoints)
    lines = ["origin: scale.test.", "soa: {mname: ns1.scale.test., rname: h.scale.test.}", "records:",
             '  "@": {NS: ns1.other.test.}']
    lines += [f"  p{k}: {{pool: p{k}}}" for k in range(ports)]
    lines.append("pools:")
    for k in range(ports):
        eps = ", ".join(address(i) for i in range(addresses))
        lines.append(f"  p{k}: {{policy: failover, check: {{type: http, port: {port_base + k}, path: /h, "
                     f"interval: 1, timeout: 0.9}}, sites: {{a: {{lat: 0, lon: 0, endpoints: [{eps}]}}}}}}")
    return "\n".join(lines) + "\n"


# --- the endpoint server (a subprocess) ---

def serve_endpoints(endpoints: int, port_base: int, ready: str, logfile: str) -> None:
    import resource
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)     # 10,000 listeners + the connections
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    log = open(logfile, "wb", buffering=2**20)  # noqa: SIM115 -- open for the process's life

    class Answer(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            host, port = transport.get_extra_info("sockname")[:2]
            self.key = struct.pack("!4sH", socket.inet_aton(host), port)

        def data_received(self, data):
            if b"\r\n\r\n" in data:
                log.write(self.key + struct.pack("!d", time.monotonic()))
                self.transport.write(RESPONSE)
                self.transport.close()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        servers = []
        for i in range(max(1, endpoints // PORTS)):
            for k in range(min(PORTS, endpoints)):
                servers.append(await loop.create_server(Answer, address(i), port_base + k, backlog=64))
        with open(ready + ".tmp", "w") as fh:   # noqa: ASYNC230 -- once, before anything is served
            fh.write(str(len(servers)))
        os.rename(ready + ".tmp", ready)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        log.flush()

    asyncio.run(main())


def lateness(logfile: str, interval: float = 1.0, skip: float = 5.0) -> dict:
    """Lateness of checks from their arrival times: for each endpoint, how much later than one interval
    after the previous check each check came (the prober aims at a fixed interval per target)."""
    with open(logfile, "rb") as fh:
        data = fh.read()
    by_key: dict[bytes, list[float]] = {}
    for off in range(0, len(data) - 13, 14):
        by_key.setdefault(data[off:off + 6], []).append(struct.unpack_from("!d", data, off + 6)[0])
    first = min((v[0] for v in by_key.values()), default=0.0)
    late = sorted(max(0.0, b - a - interval) for v in by_key.values() for a, b in itertools.pairwise(v)
                  if a >= first + skip)
    if not late:
        return {"checks": 0}
    pick = lambda q: round(late[min(len(late) - 1, int(q * len(late)))] * 1000, 1)
    return {"checks": len(late) + len(by_key), "endpoints_seen": len(by_key), "p50_ms": pick(0.5),
            "p99_ms": pick(0.99), "max_ms": round(late[-1] * 1000, 1)}


# --- the bench parts ---

def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        parts = fh.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def wait_for(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while True:
        try:
            value = check()
            if value:
                return value
        except (OSError, ValueError, KeyError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Fleet:
    """Servers, probers and the endpoint server, started in a temp dir; stopped by `close`."""

    def __init__(self, tmp: str, nodes: int, regions: int, targets: int, full_every: float = 60.0):
        self.tmp, self.procs = tmp, []
        port_base = 20000
        zdir = os.path.join(tmp, "zones")
        os.makedirs(zdir, exist_ok=True)
        with open(os.path.join(zdir, "scale.yaml"), "w") as fh:
            fh.write(zone_text(targets, port_base))
        self.ready, self.log = os.path.join(tmp, "ready"), os.path.join(tmp, "arrivals")
        self.endpoints = self._start([PY, os.path.join(HERE, "scaleprobe.py"), "--endpoints", str(targets),
                                      "--port-base", str(port_base), "--ready", self.ready, "--log", self.log])
        wait_for(lambda: os.path.exists(self.ready), 120, "the endpoint server")
        self.apis = []
        self.servers = []
        for n in range(nodes):
            config = os.path.join(tmp, f"server{n}.yaml")
            with open(config, "w") as fh:
                fh.write(f"health:\n  embedded: false\n  secret: {SECRET}\n  report_interval: 1\n"
                         f"  state_dir: {os.path.join(tmp, f'state{n}')}\n")
            api = free_port()
            self.apis.append(f"http://127.0.0.1:{api}")
            self.servers.append(self._start([PY, "-m", "gslb", "serve", "--config", config, "--zones", zdir,
                                             "--data", os.path.join(REPO, "data"), "--listen",
                                             f"127.0.0.1:{free_port()}", "--api", f"127.0.0.1:{api}"]))
        for api in self.apis:
            wait_for(lambda api=api: get_json(f"{api}/v1/zones")["zones"], 120, "gslb serve")
        self.probers = []
        for r in range(regions):
            cmd = [PY, "-m", "gslb", "probe", "--region", REGIONS[r], "--zones", zdir, "--data",
                   os.path.join(REPO, "data"), "--secret", SECRET, "--interval", "1", "--full-every", str(full_every)]
            for api in self.apis:
                cmd += ["--report-to", api]
            self.probers.append(self._start(cmd))

    def _start(self, cmd: list[str]) -> subprocess.Popen:
        with open(os.path.join(self.tmp, f"log{len(self.procs)}"), "w") as err:
            proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
        self.procs.append(proc)
        return proc

    def log_tails(self, lines: int = 5) -> str:
        """The last lines of each process's stderr: why a run did not come up."""
        out = []
        for n, proc in enumerate(self.procs):
            with open(os.path.join(self.tmp, f"log{n}"), errors="replace") as fh:
                tail = fh.read().splitlines()[-lines:]
            out.append(f"--- {' '.join(proc.args[1:4])}\n" + "\n".join(tail))
        return "\n".join(out)

    def reports(self) -> list[dict]:
        return [get_json(f"{api}/v1/health")["reports"] for api in self.apis]

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def measure(fleet: Fleet, seconds: float) -> dict:
    """CPU and report traffic over `seconds` of steady state."""
    def ingest_totals() -> dict:
        total: dict[str, list[float]] = {}
        for rep in fleet.reports():
            for kind, row in rep["ingest"].items():
                t = total.setdefault(kind, [0, 0.0, 0.0, 0.0])
                t[0] += row["count"]
                t[1] += row["count"] * row["mean_ms"]
                t[2] = max(t[2], row["max_ms"])
                t[3] += row.get("bytes", 0)
        return total
    cpu0 = {p.pid: cpu_seconds(p.pid) for p in fleet.servers + fleet.probers}
    before, t0 = ingest_totals(), time.monotonic()
    time.sleep(seconds)
    after, wall = ingest_totals(), time.monotonic() - t0
    cpu = {p.pid: (cpu_seconds(p.pid) - cpu0[p.pid]) / wall for p in fleet.servers + fleet.probers}
    kinds = {}
    for kind, (n, ms, most, nbytes) in after.items():
        b = before.get(kind, [0, 0.0, 0.0, 0.0])
        count = n - b[0]
        kinds[kind] = {"reports_per_s": round(count / wall, 2),
                       "mean_ingest_ms": round((ms - b[1]) / count, 3) if count else None,
                       "max_ingest_ms": most, "bytes_per_s": round((nbytes - b[3]) / wall),
                       "mean_bytes": round((nbytes - b[3]) / count) if count else None}
    return {"seconds": round(wall, 1), "kinds": kinds,
            "bytes_per_s_per_server": round(sum(k["bytes_per_s"] for k in kinds.values()) / len(fleet.servers)),
            "server_cpu_share": round(sum(cpu[p.pid] for p in fleet.servers) / len(fleet.servers), 4),
            "prober_cpu_share": round(sum(cpu[p.pid] for p in fleet.probers) / len(fleet.probers), 4)}


def full_report_size(fleet: Fleet) -> dict:
    rows = [rep["ingest"].get("full", {}) for rep in fleet.reports()]
    sizes = [r["max_bytes"] for r in rows if r.get("max_bytes")]
    return {"full_report_bytes": max(sizes) if sizes else None,
            "full_ingest_max_ms": max((r.get("max_ms", 0) for r in rows), default=None)}


def run_probe(args) -> dict:
    targets = 1_000 if args.quick else args.probe_targets
    with tempfile.TemporaryDirectory() as tmp:
        fleet = Fleet(tmp, 1, 1, targets, full_every=10)
        try:
            try:
                wait_for(lambda: fleet.reports()[0]["ingest"].get("full"), 120, "the first report")
            except RuntimeError:
                print(fleet.log_tails(), file=sys.stderr)
                raise
            time.sleep(10)                     # every target checked a few times
            row = {"targets": targets, "interval_s": 1, **measure(fleet, 30), **full_report_size(fleet)}
        finally:
            fleet.close()
        row["lateness"] = lateness(fleet.log)
    print(json.dumps(row), flush=True)
    return row


def run_fleet(args) -> list[dict]:
    rows = []
    for nodes, regions, targets in ((2, 3, 100), (10, 5, 1_000)):
        with tempfile.TemporaryDirectory() as tmp:
            fleet = Fleet(tmp, nodes, regions, targets)
            try:
                wait_for(lambda f=fleet, n=regions: all(r["ingest"].get("full", {}).get("count", 0) >= n
                                                        for r in f.reports()), 120, "the first reports")
                time.sleep(5)
                row = {"nodes": nodes, "regions": regions, "targets": targets,
                       **measure(fleet, 20), **full_report_size(fleet)}
            finally:
                fleet.close()
        print(json.dumps(row), flush=True)
        rows.append(row)
    rows.append(model(rows[-1], 100, 10, 10_000))
    return rows


def model(row: dict, nodes: int, regions: int, targets: int) -> dict:
    """A bigger fleet from a measured one: per server, bytes and CPU grow with the regions reporting to
    it and, for the full reports sent every 60 s and the deltas, with the targets; a steady fleet sends
    heartbeat deltas (size independent of targets) plus full reports every 60 s (size linear in targets)."""
    scale_t, scale_r = targets / row["targets"], regions / row["regions"]
    full = row["kinds"].get("full", {})
    delta = row["kinds"].get("delta", {})
    per_node = 1 / row["nodes"]         # measure() sums the kinds over every server
    # A 20 s window may hold no full report (one per 60 s): then the biggest one the servers saw.
    full_bytes = full.get("mean_bytes") or row.get("full_report_bytes") or 0
    full_ms = full.get("mean_ingest_ms") or row.get("full_ingest_max_ms") or 0
    full_bps = full_bytes * scale_t * regions / 60.0
    delta_bps = (delta.get("bytes_per_s") or 0) * per_node * scale_r
    full_cpu = full_ms * scale_t * regions / 60.0 / 1000
    delta_cpu = (delta.get("reports_per_s") or 0) * per_node * scale_r * (delta.get("mean_ingest_ms") or 0) / 1000
    return {"nodes": nodes, "regions": regions, "targets": targets, "modelled": True,
            "bytes_per_s_per_server": round(full_bps + delta_bps),
            "server_ingest_cpu_share": round(full_cpu + delta_cpu, 4),
            "bytes_per_s_fleet": round((full_bps + delta_bps) * nodes),
            "basis": f"from ({row['nodes']}, {row['regions']}, {row['targets']}): full reports every 60 s scale "
                     "with targets, heartbeat deltas with regions; CPU = ingest time only (the loop's other work "
                     "is per query, not per report)"}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoints", type=int, required=True)
    ap.add_argument("--port-base", type=int, required=True)
    ap.add_argument("--ready", required=True)
    ap.add_argument("--log", required=True)
    a = ap.parse_args()
    serve_endpoints(a.endpoints, a.port_base, a.ready, a.log)

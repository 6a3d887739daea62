"""Issue 12: a prober whose event loop is saturated by checks still reports on time. The posts run on
the Pusher's own loop (a thread): timed on the checks' loop, a post never saw its answer before its timeout
while that loop was seconds late, and the servers dropped the region."""

from __future__ import annotations

import asyncio
import http.server
import itertools
import json
import threading
import time

from httpsite import free_port

from gslb.cmds.probe import Pusher
from gslb.config.model import Check, Target
from gslb.health.prober import Prober

HOST = "127.0.0.92"
SECRET = "busy-loop-test-secret-0123456789"
INTERVAL = 0.2
BLOCK = 0.5          # each turn of the checks' loop holds the CPU this long: 2.5 intervals late


class _Receiver(http.server.ThreadingHTTPServer):
    """A report receiver on its own threads (not on the loop the test keeps busy): logs each post."""

    daemon_threads = True

    def __init__(self, port: int):
        self.posts: list[float] = []
        self.got = threading.Condition()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(h) -> None:
                h.rfile.read(int(h.headers["Content-Length"]))
                body = json.dumps({"ok": True, "deltas": True}).encode()
                h.send_response(200)
                h.send_header("Content-Type", "application/json")
                h.send_header("Content-Length", str(len(body)))
                h.end_headers()
                h.wfile.write(body)
                with self.got:
                    self.posts.append(time.monotonic())
                    self.got.notify_all()

            def log_message(h, *args) -> None:
                pass

        super().__init__((HOST, port), Handler)


def test_reports_keep_going_out_while_checks_saturate_the_probers_loop():
    receiver = _Receiver(free_port(HOST))
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    target = Target("127.0.0.1", Check(type="http", port=free_port(), interval=INTERVAL, timeout=0.1))

    async def scenario() -> list[float]:
        pusher = Pusher([f"http://{HOST}:{receiver.server_address[1]}"], SECRET, INTERVAL)
        pusher.timeout = 0.4           # 2 intervals, as the default; shorter than the loop's lag below
        prober = Prober("eu-west-1", pusher, INTERVAL, by_id=True)
        pusher.prober, pusher.snapshot = prober, prober.id_views
        await pusher.start()
        await prober.start()
        prober.set_targets([target])
        busy = True

        async def spin() -> None:      # stands in for 10,000 checks: the loop is BLOCK late at every turn
            while busy:
                end = time.perf_counter() + BLOCK
                while time.perf_counter() < end:
                    pass
                await asyncio.sleep(0)

        spinner = asyncio.create_task(spin())
        try:
            # Wait (off the busy loop) for 6 posts, or for 20 intervals of being busy.
            def wait() -> list[float]:
                with receiver.got:
                    receiver.got.wait_for(lambda: len(receiver.posts) >= 6, timeout=20 * INTERVAL)
                    return list(receiver.posts)
            return await asyncio.to_thread(wait)
        finally:
            busy = False
            await spinner
            await prober.stop()
            await pusher.stop()

    try:
        posts = asyncio.run(scenario())
    finally:
        receiver.shutdown()
        receiver.server_close()
    assert len(posts) >= 6, f"only {len(posts)} reports reached the server in {20 * INTERVAL:.0f} s"
    gaps = [b - a for a, b in itertools.pairwise(posts)]
    # A server drops a region silent for 3 intervals.
    assert max(gaps) < 3 * INTERVAL, f"reports {max(gaps):.2f} s apart"

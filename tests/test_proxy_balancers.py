"""Balancers as units: consistent hashing moves about 1/N of keys, slow start ramps, config errors."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from gslb.errors import ConfigError
from gslb.proxy.balancers import ConsistentHash, WeightedRoundRobin
from gslb.proxy.config import Backend, Outlier, UpstreamPool, load_proxy_config
from gslb.proxy.state import BackendState


class Req:
    def __init__(self, client: str):
        self.client = client

    def header(self, name: str) -> str | None:
        return None

    def cookie(self, name: str) -> str | None:
        return None


def states(n: int, slow_start: float = 0.0) -> list[BackendState]:
    backends = tuple(Backend(f"10.0.0.{i}", 80) for i in range(1, n + 1))
    pool = UpstreamPool("p", backends, slow_start=slow_start)
    return [BackendState(b, pool) for b in backends]


def test_consistent_hash_moves_about_one_nth_of_keys_when_a_backend_is_added():
    before, after = states(4), states(5)
    ring_a, ring_b = ConsistentHash(), ConsistentHash()
    keys = [f"192.0.2.{i % 250}.{i}" for i in range(5000)]
    moved = sum(ring_a.pick(before, Req(k)).address != ring_b.pick(after, Req(k)).address for k in keys)
    assert 0.12 < moved / len(keys) < 0.30          # ideal 1/5 = 0.2
    # and every key that moved, moved to the new backend
    assert all(ring_b.pick(after, Req(k)).address == "10.0.0.5:80" for k in keys
               if ring_a.pick(before, Req(k)).address != ring_b.pick(after, Req(k)).address)


def test_consistent_hash_removing_a_backend_moves_only_its_keys():
    full, ring = states(5), ConsistentHash()
    keys = [f"k{i}" for i in range(3000)]
    first = {k: ring.pick(full, Req(k)).address for k in keys}
    fewer = [b for b in full if b.address != "10.0.0.3:80"]
    for k in keys:
        if first[k] != "10.0.0.3:80":
            assert ring.pick(fewer, Req(k)).address == first[k]
    spread = Counter(first.values())
    assert len(spread) == 5 and min(spread.values()) > 300


def test_smooth_weighted_round_robin_spreads_the_heavy_backend():
    heavy = UpstreamPool("p", (Backend("a", 1, weight=5), Backend("b", 1), Backend("c", 1)))
    members = [BackendState(b, heavy) for b in heavy.backends]
    wrr = WeightedRoundRobin()
    assert "".join(wrr.pick(members, Req("x")).config.host for _ in range(14)) == "aabacaa" * 2


def test_slow_start_ramps_the_weight():
    (b,) = states(1, slow_start=10.0)
    b.up_since = time.monotonic()
    assert b.effective_weight() == pytest.approx(0.1, abs=0.02)
    b.up_since = time.monotonic() - 5
    assert b.effective_weight() == pytest.approx(0.5, abs=0.05)
    b.up_since = time.monotonic() - 20
    assert b.effective_weight() == 1.0


def test_a_backend_back_from_ejection_starts_slow_again():
    backend = Backend("10.0.0.1", 80)
    pool = UpstreamPool("p", (backend,), slow_start=10.0, outlier=Outlier(failures=1, ejection=0.05))
    b = BackendState(backend, pool)
    b.up_since = time.monotonic() - 60             # long up: full weight
    assert b.effective_weight() == 1.0
    b.passive(False)
    assert not b.healthy
    time.sleep(0.1)
    assert b.healthy and b.effective_weight() < 0.2


def test_proxy_config_errors_name_file_and_line(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("listen: [127.0.0.1:notaport]\npools:\n  app:\n    algorithm: magic\n    backends: []\n"
                    "routes:\n  - {pool: nope}\n")
    with pytest.raises(ConfigError) as err:
        load_proxy_config(str(path))
    text = str(err.value)
    assert f"{path}:1: listen: '127.0.0.1:notaport' is not ADDR:PORT" in text
    assert f"{path}:4: pool 'app': algorithm 'magic'" in text
    assert f"{path}:5: pool 'app': backends must be a non-empty list" in text
    assert f"{path}:7: route 1: pool 'nope' does not exist" in text

"""The aggregator with a controlled clock: silent regions, grace, fail-open, overrides, publishing."""

from __future__ import annotations

from gslb.config.health import HealthSettings
from gslb.config.model import Check, Target
from gslb.config.overrides import Override, parse_selector
from gslb.health.monitor import HealthMonitor
from gslb.health.snapshot import RegionView

T = Target("192.0.2.1", Check(type="tcp", port=80))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(**settings) -> tuple[HealthMonitor, Clock, list]:
    clock, published = Clock(), []
    monitor = HealthMonitor(HealthSettings(**settings), published.append, clock)
    monitor.set_targets([T])
    return monitor, clock, published


def test_a_region_silent_for_three_intervals_leaves_the_quorum():
    monitor, clock, _ = make()
    monitor.report("a", {T: RegionView("down")}, 1.0)
    monitor.report("b", {T: RegionView("up")}, 1.0)
    monitor.report("c", {T: RegionView("down")}, 1.0)
    assert monitor.snapshot.of(T).state == "down"               # 2 of 3
    clock.now += 2.5
    monitor.report("b", {T: RegionView("up")}, 1.0)
    monitor.report("c", {T: RegionView("down")}, 1.0)
    clock.now += 1.0                                            # a: 3.5 s silent > 3 intervals
    monitor.tick()
    assert set(monitor.snapshot.of(T).regions) == {"b", "c"}
    # c sees it down, b up: 1 of the 2 live regions is no majority
    assert monitor.snapshot.of(T).state == "up"
    assert monitor.snapshot.of(T).reason == "down in 1 of 2 regions (c), 2 needed"


def test_majority_of_the_live_regions_decides():
    monitor, _clock, _ = make()
    monitor.report("a", {T: RegionView("down")}, 1.0)
    monitor.report("b", {T: RegionView("up")}, 1.0)
    assert monitor.snapshot.of(T).state == "up"                 # 1 of 2 is no majority
    monitor.report("b", {T: RegionView("down")}, 1.0)
    assert monitor.snapshot.of(T).state == "down"


def test_no_prober_left_keeps_the_last_state_for_grace_then_fails_open():
    monitor, clock, published = make(grace=30.0)
    monitor.report("a", {T: RegionView("down")}, 1.0)
    assert monitor.snapshot.of(T).state == "down"
    clock.now += 10                                             # a is silent now; within grace
    monitor.tick()
    assert monitor.snapshot.of(T).state == "down" and not monitor.fail_open
    clock.now += 25                                             # more than 30 s since the last live report
    monitor.tick()
    assert monitor.fail_open and monitor.fail_open_total == 1
    assert monitor.snapshot.of(T).state == "unknown"            # unknown counts as up: fail open
    assert published[-1].of(T).state == "unknown"
    monitor.report("a", {T: RegionView("down")}, 1.0)           # the prober is back
    assert not monitor.fail_open and monitor.snapshot.of(T).state == "down"


def test_overrides_and_publishing_only_on_change():
    monitor, _clock, published = make()
    monitor.report("a", {T: RegionView("up", rtt_ms=10.0)}, 1.0)
    count = len(published)
    monitor.report("a", {T: RegionView("up", rtt_ms=10.5)}, 1.0)   # a 5 % RTT wobble: no new snapshot
    assert len(published) == count
    monitor.report("a", {T: RegionView("up", rtt_ms=20.0)}, 1.0)   # a real change: published
    assert len(published) == count + 1
    key, entry = ("t.test.", "web", "a", "192.0.2.1"), Override(parse_selector("web/a"), "down", "test", "api")
    monitor.set_overrides({key: entry})
    assert dict(published[-1].overrides) == {key: entry} and len(published) == count + 2
    monitor.set_overrides({key: entry})                          # the same overrides: nothing new
    assert len(published) == count + 2
    monitor.set_overrides({})
    assert dict(published[-1].overrides) == {}


def test_quorum_settings():
    assert HealthSettings(quorum="majority").needed(3) == 2
    assert HealthSettings(quorum="any").needed(3) == 1
    assert HealthSettings(quorum="all").needed(3) == 3
    assert HealthSettings(quorum=2).needed(1) == 1


def test_a_restored_state_holds_until_a_region_reports():
    monitor, clock, _ = make(grace=30.0)
    monitor.seed({T: "down"}, age=12)
    monitor.set_targets([T])
    assert monitor.snapshot.of(T).state == "down"
    assert monitor.snapshot.of(T).reason == "restored from the state file (12 s old)"
    clock.now += 5
    monitor.tick()
    assert monitor.snapshot.of(T).state == "down"
    monitor.report("a", {T: RegionView("up")}, 1.0)             # live reports take over
    assert monitor.snapshot.of(T).state == "up"


def test_a_restored_state_with_no_prober_ever_fails_open_after_grace():
    monitor, clock, published = make(grace=30.0)
    monitor.seed({T: "down"}, age=1)
    monitor.set_targets([T])
    clock.now += 29
    monitor.tick()
    assert monitor.snapshot.of(T).state == "down" and not monitor.fail_open
    clock.now += 2
    monitor.tick()
    assert monitor.fail_open and monitor.fail_open_total == 1
    assert published[-1].of(T).state == "unknown"


def test_rtt_is_published_when_it_moves_to_another_step():
    """RTTs count in steps (5 % above 20 ms): a wobble inside a step publishes nothing, slow drift is
    published when it reaches the next step, whatever value was kept before (every server agrees)."""
    monitor, _clock, published = make()
    monitor.report("a", {T: RegionView("up", rtt_ms=96.0)}, 1.0)     # step 95.30 .. 100.06
    count = len(published)
    for rtt in (97.5, 99.9, 95.4):
        monitor.report("a", {T: RegionView("up", rtt_ms=rtt)}, 1.0)
    assert len(published) == count
    monitor.report("a", {T: RegionView("up", rtt_ms=100.2)}, 1.0)    # the next step: published
    assert len(published) == count + 1 and published[-1].of(T).rtt_from("a") == 100.2


def test_combining_only_what_moved_gives_what_combining_everything_gives():
    """Seeded random reports, silences, overrides and target changes: after each step the snapshot equals
    a full recompute's."""
    import random
    rng = random.Random(7)
    targets = [Target(f"192.0.2.{i}", Check(type="tcp", port=80)) for i in range(1, 13)]
    clock, published = Clock(), []
    monitor = HealthMonitor(HealthSettings(grace=5.0), published.append, clock)
    monitor.set_targets(targets)
    for _ in range(400):
        step = rng.random()
        if step < 0.7:
            region = rng.choice("abcd")
            views = {t: RegionView(rng.choice(("up", "up", "down", "unknown")), rng.choice((None, 5.0, 50.0)),
                                   rng.choice((None, "refused"))) for t in rng.sample(targets, rng.randint(0, 12))}
            monitor.report(region, views, 1.0)
        elif step < 0.85:
            clock.now += rng.choice((0.5, 2.0, 6.0))
            monitor.tick()
        elif step < 0.95:
            address = rng.choice(targets).address
            state = rng.choice(("up", "down", "auto"))
            monitor.set_overrides({} if state == "auto" else {
                ("t.test.", "web", "a", address): Override(parse_selector(f"web/a/{address}"), state, "t", "api")})
        else:
            monitor.set_targets(rng.sample(targets, rng.randint(6, 12)))
        seen = {t: (h.state, h.reason, dict(h.regions)) for t, h in monitor.snapshot.targets.items()}
        version = monitor.published.version
        monitor.recompute()
        assert {t: (h.state, h.reason, dict(h.regions)) for t, h in monitor.snapshot.targets.items()} == seen
        assert monitor.published.version == version      # nothing was left unpublished

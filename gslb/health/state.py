"""Anti-flap and smoothing: HAProxy's rise/fall state machine and an EWMA of round-trip times."""

from __future__ import annotations

from gslb.health.snapshot import HealthState


class RiseFall:
    """`rise` consecutive successes make a target up, `fall` consecutive failures make it down.

    A new target is `unknown`; its first `rise` successes or `fall` failures decide it. A result that
    agrees with the current state resets the opposite counter, as in HAProxy.
    """

    __slots__ = ("_fail", "_ok", "fall", "rise", "state")

    def __init__(self, rise: int, fall: int, state: HealthState = "unknown") -> None:
        self.rise, self.fall, self.state = rise, fall, state
        self._ok = self._fail = 0

    def observe(self, ok: bool) -> bool:
        """Feed one probe result; True when the state changed."""
        if ok:
            self._ok, self._fail = self._ok + 1, 0
            if self.state != "up" and self._ok >= self.rise:
                self.state = "up"
                return True
        else:
            self._fail, self._ok = self._fail + 1, 0
            if self.state != "down" and self._fail >= self.fall:
                self.state = "down"
                return True
        return False


class Ewma:
    """Exponentially weighted moving average: value = alpha * sample + (1 - alpha) * value."""

    __slots__ = ("alpha", "value")

    def __init__(self, alpha: float = 0.3, value: float | None = None) -> None:
        self.alpha, self.value = alpha, value

    def add(self, sample: float) -> float:
        self.value = sample if self.value is None else self.alpha * sample + (1 - self.alpha) * self.value
        return self.value

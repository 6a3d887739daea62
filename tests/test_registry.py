"""One registry per concept: every name the config accepts has code behind it, and only those."""

from __future__ import annotations

import pytest

import gslb.config.zone  # registers the record types
import gslb.health.checks  # registers the check types
import gslb.steering.policies  # noqa: F401 -- registers the policies
from gslb.config.registry import ALGORITHMS, CHECK_TYPES, POLICIES, RECORD_TYPES, Registry
from gslb.proxy import balancers


@pytest.mark.parametrize("registry", [POLICIES, CHECK_TYPES, ALGORITHMS, RECORD_TYPES], ids=lambda r: r.concept)
def test_every_declared_name_is_implemented(registry):
    registry.complete()
    assert all(callable(registry[name]) for name in registry)


def test_an_undeclared_name_cannot_be_registered():
    registry = Registry("thing", {"a": "the one"})
    with pytest.raises(AssertionError, match="'b' is not declared"):
        registry.implements("b")(print)
    registry.implements("a")(print)
    with pytest.raises(AssertionError, match="implemented twice"):
        registry.implements("a")(print)


def test_an_unknown_algorithm_is_not_quietly_a_hash_ring():
    assert isinstance(balancers.make_balancer("consistent_hash", "header:X"), balancers.ConsistentHash)
    assert isinstance(balancers.make_balancer("ewma"), balancers.Ewma)
    with pytest.raises(LookupError, match="no implementation of proxy algorithm 'round-robin'"):
        balancers.make_balancer("round-robin")

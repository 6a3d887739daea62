"""Reading a real /metrics in tests: fetch, parse with prometheus_client's parser, lint with promtool."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families


def fetch(url: str, token: str | None = None) -> str:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return resp.read().decode()


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """(sample name, frozenset of label pairs) -> value, for every sample of the exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(all_samples: dict, name: str, **labels: str) -> float:
    """The sample `name` with exactly these labels (0 when absent)."""
    return all_samples.get((name, frozenset(labels.items())), 0.0)


def total(all_samples: dict, name: str, **labels: str) -> float:
    """The sum of every sample `name` whose labels include these."""
    want = set(labels.items())
    return sum(v for (n, ls), v in all_samples.items() if n == name and want <= ls)


def promtool() -> str:
    """The promtool binary (Debian package `prometheus`; scripts/install --test installs it)."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: install the Debian package prometheus (scripts/install --test does)")
    return path


def promtool_check_metrics(text: str) -> None:
    """`promtool check metrics` must accept the exposition without a single complaint."""
    result = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), \
        f"promtool check metrics: rc {result.returncode}\n{result.stdout}{result.stderr}"

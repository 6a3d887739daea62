"""schemas/: generated from the registries and the loaders' declarations, committed as generated, and
true to the loaders: every example file of the repository validates, and wrong shapes are refused."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from jsonschema import Draft202012Validator, FormatChecker

from gslb.config.yamlsrc import load_yaml
from gslb.schema import rendered, schemas

SCHEMAS = Path(REPO) / "schemas"
# A file names its schema on its first line, as editors read it.
SCHEMA_LINE = re.compile(r"#\s*yaml-language-server:\s*\$schema=\S*?(\w+)\.schema\.json")


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMAS / f"{name}.schema.json").read_text()),
                                format_checker=FormatChecker())


def as_json(value):
    """What an editor's YAML 1.2 parser sees: a timestamp stays text (PyYAML makes it a datetime)."""
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    return value.isoformat() if isinstance(value, (datetime.date, datetime.datetime)) else value


def errors(name: str, text: str) -> list[str]:
    return [e.message for e in validator(name).iter_errors(as_json(load_yaml(text, "x.yaml")))]


def test_the_committed_schemas_are_the_generated_ones():
    assert sorted(p.name for p in SCHEMAS.glob("*.json")) == sorted(rendered())
    for name, text in rendered().items():
        assert (SCHEMAS / name).read_text() == text, f"run: python -m gslb.schema --write schemas/ ({name})"
    for schema in schemas().values():
        Draft202012Validator.check_schema(schema)


def test_check_mode_finds_a_stale_file(tmp_path):
    cmd = [sys.executable, "-m", "gslb.schema"]
    assert subprocess.run([*cmd, "--write", str(tmp_path)], cwd=REPO, capture_output=True, check=False).returncode == 0
    assert subprocess.run([*cmd, "--check", str(tmp_path)], cwd=REPO, capture_output=True, check=False).returncode == 0
    (tmp_path / "zone.schema.json").write_text("{}\n")
    result = subprocess.run([*cmd, "--check", str(tmp_path)], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "zone.schema.json: differs" in result.stdout


def _examples() -> list[tuple[str, str, str]]:
    """(label, schema, text) of every example: files, and docs blocks that name their schema."""
    root = Path(REPO)
    out = [(str(p.relative_to(root)), "zone", p.read_text()) for p in sorted((root / "zones").glob("*.yaml"))]
    out += [("examples/proxy.yaml", "proxy", (root / "examples/proxy.yaml").read_text()),
            ("contrib/systemd/server.yaml", "server", (root / "contrib/systemd/server.yaml").read_text())]
    for doc in sorted((root / "docs").glob("*.md")):
        for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.DOTALL)):
            if m := SCHEMA_LINE.match(block):
                out.append((f"{doc.name} block {i + 1}", m.group(1), block))
    return out


EXAMPLES = _examples()


def test_the_docs_name_a_schema_for_each_kind_of_file():
    assert {schema for label, schema, _ in EXAMPLES if label.endswith(tuple(f"block {n}" for n in range(1, 50)))} \
        >= {"zone", "server", "proxy", "overrides"}


@pytest.mark.parametrize(("label", "schema", "text"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_every_example_validates(label, schema, text):
    assert errors(schema, text) == []


BAD_ZONES = ["bad-ip.yaml", "bad-missing-soa.yaml", "bad-pools-not-a-mapping.yaml", "bad-ttl.yaml",
             "bad-unknown-pool-key.yaml", "bad-unknown-type.yaml", "bad-weight.yaml"]


@pytest.mark.parametrize("name", BAD_ZONES)
def test_bad_zone_files_are_refused(name):
    assert errors("zone", (Path(REPO) / "tests/zones" / name).read_text())


@pytest.mark.parametrize(("schema", "text", "says"), [
    ("zone", ("origin: a.\nsoa: {mname: a., rname: b.}\nrecords: {}\npools:\n  p: {policy: fastest, sites: "
             "{s: {endpoints: [192.0.2.1]}}}\n"), "'fastest' is not one of"),
    ("zone", ("origin: a.\nsoa: {mname: a., rname: b.}\nrecords: {}\npools:\n  p:\n    check: {type: tcp}\n"
             "    sites: {s: {endpoints: [192.0.2.1]}}\n"), "{'type': 'tcp'} is not valid"),
    ("proxy", "pools: {app: {algorithm: round-robin, backends: ['127.0.0.1:1']}}\nroutes: [{pool: app}]\n",
     "'round-robin' is not one of"),
    ("proxy", "pools: {app: {backends: [localhost]}}\nroutes: [{pool: app}]\n", "is not valid"),
    ("server", "workers: 0\n", "0 is less than the minimum of 1"),
    ("server", "tcp: {idle: 3}\n", "Additional properties are not allowed ('idle' was unexpected)"),
    ("overrides", "overrides: [{selector: www, state: drained, reason: x}]\n", "'drained' is not one of"),
])
def test_wrong_shapes_are_refused(schema, text, says):
    assert any(says in e for e in errors(schema, text)), errors(schema, text)

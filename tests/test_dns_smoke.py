"""A first end-to-end check of the bundled example zone over real UDP and TCP."""

import dns.rcode
from conftest import EXAMPLE_ZONE, rrset_texts


def test_static_a_over_udp_and_tcp(serve):
    srv = serve({"example.yaml": EXAMPLE_ZONE})
    for tcp in (False, True):
        r = srv.query("static.gslb.example.com", "A", tcp=tcp)
        assert r.rcode() == dns.rcode.NOERROR
        assert rrset_texts(r) == ["static.gslb.example.com. 300 A 192.0.2.10",
                                  "static.gslb.example.com. 300 A 192.0.2.11"]


def test_pool_answers_stay_the_same_size_over_many_queries(serve):
    """Regression: a packed entry must never grow between queries (it once was a shared bytearray)."""
    srv = serve({"example.yaml": EXAMPLE_ZONE})
    sizes = {len(srv.query("www.gslb.example.com", "A").to_wire()) for _ in range(300)}
    assert len(sizes) == 1
    r = srv.query("www.gslb.example.com", "A")
    assert r.rcode() == dns.rcode.NOERROR and len(r.answer) == 1 and len(r.answer[0]) == 1


def test_optional_query_log(serve, caplog):
    caplog.set_level("INFO", logger="gslb.query")
    srv = serve({"example.yaml": EXAMPLE_ZONE}, config_yaml="query_log: true\n")
    srv.query("static.gslb.example.com", "A")
    srv.query("nope.gslb.example.com", "A", tcp=True)
    lines = [r.getMessage() for r in caplog.records if r.name == "gslb.query"]
    assert len(lines) == 2
    assert lines[0].startswith("udp 127.0.0.1 static.gslb.example.com. A NOERROR")
    assert lines[1].startswith("tcp 127.0.0.1 nope.gslb.example.com. A NXDOMAIN")

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

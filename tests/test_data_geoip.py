"""The bundled location data: the country database covers IPv4 and IPv6, regions.yaml is sane, and the
test-database helper (tests/mmdbutil.py) writes what geoip2 reads back."""

from __future__ import annotations

import hashlib
import ipaddress
import random

import geoip2.database
import geoip2.errors
import maxminddb
import pytest
from conftest import REPO
from mmdbutil import write_test_mmdb

from gslb.config.regions import load_regions
from gslb.steering.location import Locator

DB = str(REPO / "data" / "gslb-geo.mmdb")
CONTINENTS = {"AF", "AN", "AS", "EU", "NA", "OC", "SA"}


@pytest.mark.parametrize("address, continent, country", [
    ("193.0.0.1", "EU", "NL"),        # RIPE NCC, Amsterdam
    ("1.0.0.1", "OC", "AU"),          # APNIC's research prefix 1.0.0.0/24, registered in Australia
    ("8.8.8.8", "NA", "US"),
    ("2001:4860::1", "NA", "US"),     # Google, IPv6
    ("2001:67c:2e8::1", "EU", "NL"),  # RIPE NCC, IPv6
    ("2001:dc0:2001::1", "OC", "AU"), # APNIC, IPv6
])
def test_bundled_database_answers_city_layout(address, continent, country):
    with geoip2.database.Reader(DB) as reader:
        city = reader.city(address)
        by_country = reader.country(address)
    assert (city.continent.code, city.country.iso_code) == (continent, country)
    assert (by_country.continent.code, by_country.country.iso_code) == (continent, country)
    assert -90 <= city.location.latitude <= 90 and -180 <= city.location.longitude <= 180


def _sample_hits(reader: geoip2.database.Reader, addresses: list[str]) -> int:
    found = 0
    for address in addresses:
        try:
            reader.country(address)
            found += 1
        except geoip2.errors.AddressNotFoundError:
            pass
    return found


def test_bundled_database_covers_most_of_the_public_ipv4_space():
    rng = random.Random(1)
    addresses: list[str] = []
    while len(addresses) < 2000:
        address = ipaddress.IPv4Address(rng.getrandbits(32))
        if address.is_global and not address.is_multicast:
            addresses.append(str(address))
    with geoip2.database.Reader(DB) as reader:
        found = _sample_hits(reader, addresses)
    assert found / len(addresses) > 0.9, f"{found}/{len(addresses)}"


@pytest.mark.parametrize("address, country", [
    # Large IPv6 allocations of big access networks, at least one per Regional Internet Registry.
    ("2003:e0::1", "DE"),             # Deutsche Telekom (RIPE NCC)
    ("2a01:cb00::1", "FR"),           # Orange (RIPE NCC)
    ("2601:100::1", "US"),            # Comcast (ARIN)
    ("240e:300::1", "CN"),            # China Telecom (APNIC)
    ("2409:4040::1", "IN"),           # Reliance Jio (APNIC)
    ("2001:8000::1", "AU"),           # Telstra (APNIC)
    ("2804:14c::1", "BR"),            # LACNIC
    ("2800:3f0::1", "AR"),            # LACNIC
    ("2001:4200::1", "ZA"),           # AFRINIC
])
def test_bundled_database_covers_ipv6_in_every_registry(address, country):
    with geoip2.database.Reader(DB) as reader:
        assert reader.city(address).country.iso_code == country


def test_every_bundled_record_has_continent_country_and_coordinates():
    # Walk the whole tree (about 0.5 M networks, a few seconds): a record missing a field would make
    # a client's location half-known.
    bad: set[str] = set()
    countries: set[str] = set()
    networks = {4: 0, 6: 0}
    with maxminddb.open_database(DB) as reader:
        assert "City" in reader.metadata().database_type   # geoip2's Reader.city() requires it
        for network, record in reader:
            networks[network.version] += 1
            code = record["country"]["iso_code"]
            countries.add(code)
            location = record.get("location") or {}
            if (record.get("continent", {}).get("code") not in CONTINENTS
                    or not -90 <= location.get("latitude", 999) <= 90
                    or not -180 <= location.get("longitude", 999) <= 180):
                bad.add(code)
    assert not bad
    assert len(countries) > 200
    assert networks[4] > 100_000 and networks[6] > 100_000, networks


def test_private_addresses_are_unknown_with_a_prefix():
    location = Locator(DB).locate("10.1.2.3")
    assert not location.known and location.prefix_len > 0


def test_regions_file_parses_with_coordinates_in_range():
    regions = load_regions(str(REPO / "data" / "regions.yaml"))
    assert {"us-east-1", "eu-west-1", "ap-southeast-1", "us-central1", "europe-west1", "eastus",
            "westeurope"} <= set(regions.by_name)
    assert len(regions.by_name) > 100
    for region in regions.by_name.values():
        assert -90 <= region.lat <= 90 and -180 <= region.lon <= 180


def test_regions_sit_on_the_right_side_of_the_world():
    regions = load_regions(str(REPO / "data" / "regions.yaml")).by_name
    # Catches swapped lat/lon or a lost minus sign: the sign of each coordinate follows the continent.
    assert regions["us-east-1"].lon < 0 < regions["us-east-1"].lat
    assert regions["ap-southeast-2"].lat < 0 < regions["ap-southeast-2"].lon
    assert regions["sa-east-1"].lat < 0 and regions["sa-east-1"].lon < 0
    assert regions["europe-west1"].lat > 45 and -10 < regions["europe-west1"].lon < 30


ENTRIES = [
    ("198.51.100.0/24", {"continent": "NA", "country": "US", "subdivision": "US-CA", "lat": 37.4, "lon": -122.1}),
    ("198.51.100.128/25", {"continent": "NA", "country": "US", "subdivision": "TX", "lat": 30.3, "lon": -97.7}),
    ("203.0.113.0/24", {"continent": "EU", "country": "DE", "lat": 50.1, "lon": 8.7}),
    ("2001:db8:1::/48", {"continent": "AS", "country": "JP", "subdivision": "JP-13", "lat": 35.7, "lon": 139.7}),
    ("2001:db8:2::/48", {"continent": "OC", "country": "AU"}),
]


@pytest.mark.parametrize("address, continent, country, subdivision, lat, lon, network", [
    ("198.51.100.7", "NA", "US", "CA", 37.4, -122.1, "198.51.100.0/25"),
    ("198.51.100.200", "NA", "US", "TX", 30.3, -97.7, "198.51.100.128/25"),  # the nested one wins
    ("203.0.113.9", "EU", "DE", None, 50.1, 8.7, "203.0.113.0/24"),
    ("2001:db8:1::42", "AS", "JP", "13", 35.7, 139.7, "2001:db8:1::/48"),
    ("2001:db8:2:ffff::1", "OC", "AU", None, None, None, "2001:db8:2::/48"),
])
def test_write_test_mmdb_reads_back_through_geoip2(tmp_path, address, continent, country, subdivision,
                                                    lat, lon, network):
    path = write_test_mmdb(str(tmp_path / "t.mmdb"), ENTRIES)
    with geoip2.database.Reader(path) as reader:
        city = reader.city(address)
    assert (city.continent.code, city.country.iso_code) == (continent, country)
    assert city.subdivisions.most_specific.iso_code == subdivision
    assert (city.location.latitude, city.location.longitude) == (lat, lon)
    assert str(city.traits.network) == network


def test_write_test_mmdb_leaves_other_addresses_out(tmp_path):
    path = write_test_mmdb(str(tmp_path / "t.mmdb"), ENTRIES)
    with geoip2.database.Reader(path) as reader:
        for address in ("192.0.2.1", "2001:db8:3::1", "8.8.8.8"):
            with pytest.raises(geoip2.errors.AddressNotFoundError):
                reader.city(address)


def test_write_test_mmdb_feeds_the_locator_with_subdivisions(tmp_path):
    path = write_test_mmdb(str(tmp_path / "t.mmdb"), ENTRIES)
    locator = Locator(path)
    try:
        v4, v6 = locator.locate("198.51.100.7"), locator.locate("2001:db8:1::1")
    finally:
        locator.close()
    assert (v4.subdivision, v4.prefix_len) == ("US-CA", 25)
    assert (v6.subdivision, v6.continent, v6.prefix_len) == ("JP-13", "AS", 48)


def test_write_test_mmdb_is_deterministic_and_strict(tmp_path):
    first = write_test_mmdb(str(tmp_path / "a.mmdb"), ENTRIES)
    second = write_test_mmdb(str(tmp_path / "b.mmdb"), list(reversed(ENTRIES)))
    with open(first, "rb") as a, open(second, "rb") as b:
        assert hashlib.sha256(a.read()).digest() == hashlib.sha256(b.read()).digest()
    with pytest.raises(ValueError):
        write_test_mmdb(str(tmp_path / "c.mmdb"), [("198.51.100.1/24", {"continent": "NA", "country": "US"})])
    with pytest.raises(ValueError):
        write_test_mmdb(str(tmp_path / "d.mmdb"), [("198.51.100.0/24", {"continent": "NA", "country": "US",
                                                                             "lat": 1.0})])

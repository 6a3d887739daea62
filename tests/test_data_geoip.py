"""The bundled location data: the country database covers IPv4 and IPv6, regions.yaml is sane."""

from __future__ import annotations

import ipaddress
import random

import geoip2.database
import geoip2.errors
import pytest
from conftest import REPO

from gslb.config.regions import load_regions
from gslb.steering.location import Locator

DB = str(REPO / "data" / "gslb-geo.mmdb")


@pytest.mark.parametrize("address, continent, country", [
    ("193.0.0.1", "EU", "NL"),        # RIPE NCC
    ("1.0.0.1", "OC", "AU"),          # APNIC's 1.0.0.0/24
    ("8.8.8.8", "NA", "US"),
    ("2001:4860::1", "NA", "US"),
    ("2001:67c:2e8::1", "EU", "NL"),  # RIPE NCC, IPv6
])
def test_bundled_database_answers_city_layout(address, continent, country):
    with geoip2.database.Reader(DB) as reader:
        city = reader.city(address)
    assert (city.continent.code, city.country.iso_code) == (continent, country)
    assert city.location.latitude is not None and city.location.longitude is not None


def test_bundled_database_covers_most_of_the_public_ipv4_space():
    rng = random.Random(1)
    with geoip2.database.Reader(DB) as reader:
        found = total = 0
        while total < 2000:
            address = ipaddress.IPv4Address(rng.getrandbits(32))
            if not address.is_global or address.is_multicast:
                continue
            total += 1
            try:
                reader.country(str(address))
                found += 1
            except geoip2.errors.AddressNotFoundError:
                pass
    assert found / total > 0.9


def test_private_addresses_are_unknown_with_a_prefix():
    location = Locator(DB).locate("10.1.2.3")
    assert not location.known and location.prefix_len > 0


def test_regions_file_parses_with_coordinates_in_range():
    regions = load_regions(str(REPO / "data" / "regions.yaml"))
    assert {"us-east-1", "eu-west-1", "ap-southeast-1", "us-central1", "westeurope"} <= set(regions.by_name)
    for region in regions.by_name.values():
        assert -90 <= region.lat <= 90 and -180 <= region.lon <= 180

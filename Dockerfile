# gslb: authoritative GSLB DNS server serving the bundled example zone.
#   docker build -t gslb . && docker run --rm -p 5353:53/udp -p 5353:53/tcp -p 127.0.0.1:8053:8053 gslb
# The API binds 0.0.0.0 in the container so -p can publish it: publish it on loopback or a private network.
# Reads (zones, health, /metrics) are open unless GSLB_API_READ_TOKEN is set; writes (drains, reload) need
# GSLB_API_TOKEN and are refused without it; prober reports are signed with GSLB_SECRET (README, Docker).
#   dig @127.0.0.1 -p 5353 www.gslb.example.com A
FROM python:3.11-slim

WORKDIR /srv/gslb
COPY pyproject.toml README.md ./
COPY gslb ./gslb
RUN pip install --no-cache-dir . && useradd --system --no-create-home gslb \
    && mkdir -p /srv/gslb/state && chown gslb /srv/gslb/state
COPY zones ./zones
COPY data ./data

# Binding port 53 needs CAP_NET_BIND_SERVICE; it is granted to the interpreter so gslb runs unprivileged.
RUN apt-get update && apt-get install -y --no-install-recommends libcap2-bin \
    && setcap 'cap_net_bind_service=+ep' "$(readlink -f "$(command -v python3)")" \
    && apt-get purge -y libcap2-bin && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
USER gslb

EXPOSE 53/udp 53/tcp 8053/tcp
HEALTHCHECK --interval=30s --timeout=3s CMD python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8053/healthz', timeout=2)"
ENTRYPOINT ["gslb"]
CMD ["serve", "--zones", "/srv/gslb/zones", "--data", "/srv/gslb/data", "--listen", "0.0.0.0:53", "--api", "0.0.0.0:8053"]

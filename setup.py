"""Build step beyond pyproject.toml: the optional C twin of the DNS server's batched UDP.

gslb/dns/_udpbatch.c (recvmmsg/sendmmsg) is built on Linux when a C compiler and the Python headers are
there; when it cannot be built, the install goes on and gslb uses the pure-Python twin
(gslb/dns/udpbatch_py.py; see gslb/dns/udpbatch.py).
"""

import sys

from setuptools import Extension, setup

ext_modules = []
if sys.platform.startswith("linux"):
    ext_modules.append(Extension("gslb.dns._udpbatch", ["gslb/dns/_udpbatch.c"], optional=True,
                                 extra_compile_args=["-O2"]))

setup(ext_modules=ext_modules)

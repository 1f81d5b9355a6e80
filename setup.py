"""Build of the optional C accelerator ``tlog_client._bulk`` (SPEC §8).

All metadata lives in pyproject.toml; this file only adds the extension. The
extension is optional: without a C compiler, Python headers or OpenSSL's
headers and libcrypto, the build warns and the package installs with the
pure-Python backend of ``tlog_client.bulk``, which gives identical results.
``TLOG_BUILD_EXT=0`` skips the build on purpose.
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


PTHREAD = ["-pthread"] if os.name == "posix" else []


class OptionalBuildExt(build_ext):
    """build_ext that turns any build failure into a warning."""

    def run(self):
        if os.environ.get("TLOG_BUILD_EXT", "1") == "0":
            self._skip("TLOG_BUILD_EXT=0")
            self._remove_stale(self.extensions)
            return
        try:
            super().run()
        except Exception as exc:  # no compiler, no headers: fall back
            self._skip(exc)
            self._remove_stale(self.extensions)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._skip(exc)
            self._remove_stale([ext])

    def _remove_stale(self, exts):
        """pip builds a local directory in place, reusing its build/: a module
        left there (or in the source tree, for an editable install) by an
        earlier build would be installed although this one was skipped."""
        for ext in exts:
            path = self.get_ext_fullpath(ext.name)
            if os.path.exists(path):
                os.remove(path)

    @staticmethod
    def _skip(reason):
        msg = (
            f"WARNING: tlog_client._bulk not built ({reason}); "
            "tlog_client.bulk uses its pure-Python backend"
        )
        print(msg, file=sys.stderr)


setup(
    ext_modules=[
        Extension(
            "tlog_client._bulk",
            # The Python module, entries gathered without the GIL, RFC 6962
            # levels and threads, SHA-256 compression (one concept each; see
            # each file's header).
            sources=["client/_bulk.c", "client/_bulk_leaves.c", "client/_bulk_merkle.c",
                     "client/_bulk_sha256.c"],
            depends=["client/_bulk_leaves.h", "client/_bulk_merkle.h", "client/_bulk_sha256.h"],
            libraries=["crypto"],
            # -pthread: large inputs are hashed by several threads.
            extra_compile_args=["-O2"] + PTHREAD,
            extra_link_args=PTHREAD,
            optional=True,
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)

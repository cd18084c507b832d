"""Test-wide set-up: 8 fake CPU devices, so mesh code runs sharded on one CPU.

The flag must be set before JAX initialises its backends, hence at import time.
"""

import os
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_flag = "--xla_force_host_platform_device_count=8"
if _flag not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()

# Many tests compile the same small programs (the runlocal trainer three times, the
# sampler in several modules): a persistent compilation cache shared by the xdist
# workers turns the repeats into cache hits.
os.environ.setdefault(
  "JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "jaxrl_verify_test_jax_cache")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

# Property-based tests draw the same examples on every run (a CI failure is reproducible,
# never a fluke of the seed), with no per-example deadline on a loaded 2-core machine, and
# keep no example database in the clone.
from hypothesis import settings  # noqa: E402

settings.register_profile("repo", derandomize=True, deadline=None, database=None)
settings.load_profile("repo")

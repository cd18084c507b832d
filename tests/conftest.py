"""Test-wide set-up: 8 fake CPU devices, so mesh code runs sharded on one CPU.

The flag must be set before JAX initialises its backends, hence at import time.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_flag = "--xla_force_host_platform_device_count=8"
if _flag not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()

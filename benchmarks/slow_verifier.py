"""`math_slow`: the `math` verifier after a fixed wall-clock delay (benchmarks only).

Models a verifier whose latency is not CPU work (a remote judge, a sandbox start-up):
`sleep_ms` of sleep per item, then the ordinary math check. Workers import this module
through `VerifierPool(imports=("slow_verifier",))` with `benchmarks/` on sys.path.
"""

from __future__ import annotations

import time
from typing import Any

from jaxrl_verify.verifiers import base


@base.register("math_slow")
def math_slow(completion: str, reference: Any, *, sleep_ms: float = 50.0, **fields: Any):
  time.sleep(float(sleep_ms) / 1000.0)
  return base.get("math")(completion, reference, **fields)

r"""Sampler throughput: generated tokens/s, compile time, fraction of measured peak FLOP/s.

  python benchmarks/sampler.py [--batch-sizes 1,16,64,256] [--peer] [--repeats 3]

Set-up (issue 2, item 9): the `bench` preset in fp32, prompts of 16 random tokens, 64
new tokens, temperature 1 (no top-k/top-p), EOS ignored so every row generates 64
tokens. One JSON object per batch size on stdout:

* `tokens_per_s`: batch * 64 / seconds of one `generate` call (prefill included), best of
  `--repeats` calls after warm-up (timed calls of ours and the peer alternate, so both
  see the same load on a shared machine). `cpu_s_per_call`: process CPU seconds of the
  best call, a load-robust companion figure.
* `compile_s`: wall time of the first call minus that of a steady-state call.
* `peak_fraction`: achieved model FLOP/s over the machine's peak matmul FLOP/s, which this
  script measures in the same run (best of several 2048^3 fp32 `jnp.matmul`s).
  Model FLOPs count only useful work: 2 * (matmul parameters, i.e. all but the embedding
  table) per token processed (16 prompt + 64 generated per row), plus attention
  4 * layers * heads * head_dim * context per token, context = the token's real
  position + 1. (The implementation attends over the whole preallocated cache; that extra
  work is not counted.)
* with `--peer`: the same for Hugging Face `transformers` `generate` (PyTorch CPU, KV
  cache, sdpa attention) on a randomly initialised `LlamaForCausalLM` of the same shape,
  `do_sample=True, top_k=0, min_new_tokens=max_new_tokens`, and `ratio` = ours / peer
  tokens/s.
  Needs `pip install -e .[bench]` (torch, transformers). On a loaded machine torch's
  OpenMP threads spin and its wall time collapses; `--peer-threads 1` and the
  `*cpu_s_per_call` fields give a load-robust comparison of work per call.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time


def _host_devices(argv) -> int:
  """`--host-devices N`, read before JAX starts (the device count is fixed at start-up)."""
  for i, arg in enumerate(argv):
    if arg == "--host-devices" and i + 1 < len(argv):
      return int(argv[i + 1])
    if arg.startswith("--host-devices="):
      return int(arg.split("=", 1)[1])
  return 1


if _host_devices(sys.argv) > 1:
  os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + f" --xla_force_host_platform_device_count={_host_devices(sys.argv)}"
  )

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxrl_verify import sharding  # noqa: E402
from jaxrl_verify.models import hf  # noqa: E402
from jaxrl_verify.models.config import get_preset  # noqa: E402
from jaxrl_verify.models.transformer import Transformer  # noqa: E402
from jaxrl_verify.sampler import Sampler, SamplingParams  # noqa: E402

PROMPT_LEN, NEW_TOKENS = 16, 64


def peak_matmul_flops(n: int = 2048, repeats: int = 5) -> float:
  """Best fp32 FLOP/s of an n x n x n jnp.matmul on the default device."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
  mm = jax.jit(jnp.matmul)
  mm(a, b).block_until_ready()
  best = min(_timed(lambda: mm(a, b).block_until_ready()) for _ in range(repeats))
  return 2 * n**3 / best


def _timed(fn) -> float:
  t0 = time.perf_counter()
  fn()
  return time.perf_counter() - t0


def model_flops(cfg, batch: int) -> float:
  """Useful FLOPs of one benchmark call (prefill + decode), see the module docstring."""
  per_layer = cfg.embed_dim * cfg.head_dim * (2 * cfg.num_heads + 2 * cfg.num_kv_heads)
  per_layer += 3 * cfg.embed_dim * cfg.mlp_dim
  matmul_params = cfg.num_layers * per_layer + cfg.embed_dim * cfg.vocab_size
  tokens = PROMPT_LEN + NEW_TOKENS
  context_sum = tokens * (tokens + 1) / 2  # sum over positions of (position + 1)
  attention = 4 * cfg.num_layers * cfg.num_heads * cfg.head_dim * context_sum
  return batch * (2 * matmul_params * tokens + attention)


def _cpu_s() -> float:
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def _measure(run) -> tuple[float, float]:
  """(wall seconds, process CPU seconds) of one call."""
  c0, t0 = _cpu_s(), time.perf_counter()
  run()
  return time.perf_counter() - t0, _cpu_s() - c0


def make_ours(cfg, batch: int):
  """(run(i), compile_s): one jitted `Sampler.generate` call, warmed up."""
  mesh = None
  if jax.device_count() > 1:
    # Data parallel over host devices: on a CPU each device runs on its own core.
    mesh = sharding.make_mesh((-1, 1, 1))
    graphdef, state, _ = sharding.create_sharded(lambda: Transformer(cfg, rngs=nnx.Rngs(0)), mesh)
  else:
    graphdef, state = nnx.split(Transformer(cfg, rngs=nnx.Rngs(0)))
  sampler = Sampler(
    graphdef,
    cfg,
    max_prompt_len=PROMPT_LEN,
    max_new_tokens=NEW_TOKENS,
    eos_id=None,
    pad_id=0,
    mesh=mesh,
  )
  tokens = np.random.default_rng(0).integers(1, cfg.vocab_size, (batch, PROMPT_LEN))
  mask = np.ones_like(tokens, bool)
  params = SamplingParams(temperature=1.0)
  calls = iter(range(10**6))

  def run():
    out = sampler.generate(state, tokens, mask, jax.random.key(next(calls)), params)
    return jax.block_until_ready(out)

  first = _timed(run)
  steady = min(_timed(run) for _ in range(2))
  assert int(run().length_g.min()) == NEW_TOKENS  # EOS ignored: full length
  return run, max(first - steady, 0.0)


def make_peer(cfg, batch: int, threads: int | None):
  """run(): one `transformers` `generate` call on a same-shape Llama, warmed up."""
  import torch
  import transformers

  if threads:
    torch.set_num_threads(threads)

  # The same shape as ours, through the exporter's mapping (`hf.to_hf_config`).
  hf_cfg = transformers.LlamaConfig(
    **{
      **hf.to_hf_config(cfg, "llama"),
      "max_position_embeddings": PROMPT_LEN + NEW_TOKENS,
      "pad_token_id": 0,
      "eos_token_id": 1,
      "bos_token_id": 2,
    }
  )
  torch.manual_seed(0)
  model = transformers.LlamaForCausalLM._from_config(
    hf_cfg, attn_implementation="sdpa", dtype=torch.float32
  ).eval()
  tokens = torch.from_numpy(
    np.random.default_rng(0).integers(3, cfg.vocab_size, (batch, PROMPT_LEN))
  )

  def run():
    with torch.inference_mode():
      out = model.generate(
        input_ids=tokens,
        attention_mask=torch.ones_like(tokens),
        do_sample=True,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        max_new_tokens=NEW_TOKENS,
        min_new_tokens=NEW_TOKENS,
        use_cache=True,
        pad_token_id=0,
      )
    assert out.shape == (batch, PROMPT_LEN + NEW_TOKENS)

  run()
  return run, torch.get_num_threads()


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch-sizes", default="1,16,64,256", help="comma-separated")
  parser.add_argument("--peer", action="store_true", help="also time HF transformers")
  parser.add_argument(
    "--peer-threads",
    type=int,
    default=None,
    help="torch intra-op threads for the peer (default: torch's own choice)",
  )
  parser.add_argument("--repeats", type=int, default=3, help="timed calls (best is kept)")
  parser.add_argument(
    "--host-devices",
    type=int,
    default=1,
    help="split the CPU into N XLA host devices and shard the batch over them (data parallel)",
  )
  args = parser.parse_args(argv)
  try:
    batches = [int(b) for b in args.batch_sizes.split(",")]
  except ValueError:
    parser.error("--batch-sizes must be comma-separated integers, e.g. 1,16,64.")
  cfg = get_preset("bench", dtype="float32", param_dtype="float32")
  peak = peak_matmul_flops()
  for batch in batches:
    ours, compile_s = make_ours(cfg, batch)
    peer, threads = make_peer(cfg, batch, args.peer_threads) if args.peer else (None, None)
    # Alternate the timed calls so both see the same machine load; keep the best of each.
    ours_t, peer_t = [], []
    for _ in range(args.repeats):
      ours_t.append(_measure(ours))
      if peer is not None:
        peer_t.append(_measure(peer))
    wall, cpu = min(t for t, _ in ours_t), min(c for _, c in ours_t)
    flops = model_flops(cfg, batch)
    result = {
      "batch": batch,
      "prompt_len": PROMPT_LEN,
      "new_tokens": NEW_TOKENS,
      "tokens_per_s": round(batch * NEW_TOKENS / wall, 1),
      "compile_s": round(compile_s, 2),
      "peak_fraction": round(flops / wall / peak, 4),
      "model_gflop_per_s": round(flops / wall / 1e9, 2),
      "peak_gflop_per_s": round(peak / 1e9, 2),
      "cpu_s_per_call": round(cpu, 3),
      "device": jax.devices()[0].device_kind,
      "host_devices": jax.device_count(),
    }
    if peer is not None:
      peer_wall, peer_cpu = min(t for t, _ in peer_t), min(c for _, c in peer_t)
      result["peer"] = "transformers.generate (torch cpu, sdpa, kv cache)"
      result["peer_tokens_per_s"] = round(batch * NEW_TOKENS / peer_wall, 1)
      result["peer_peak_fraction"] = round(flops / peer_wall / peak, 4)
      result["peer_cpu_s_per_call"] = round(peer_cpu, 3)
      result["peer_threads"] = threads
      result["ratio"] = round(peer_wall / wall, 3)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
  main()

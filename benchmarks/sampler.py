r"""Sampler throughput: generated tokens/s, compile time, fraction of measured peak FLOP/s.

  python benchmarks/sampler.py [--batch-sizes 1,16,64,256] [--peer] [--repeats 3]

Set-up (issue 2, item 9): the `bench` preset in fp32, prompts of 16 random tokens, 64
new tokens, temperature 1 (no top-k/top-p), EOS ignored so every row generates 64
tokens. One JSON object per batch size on stdout:

* `tokens_per_s`: batch * 64 / seconds of one `generate` call (prefill included), best of
  `--repeats` calls after a warm-up call.
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
  `do_sample=True, top_k=0, min_new_tokens=max_new_tokens`, and `ratio` = ours / peer.
  Needs `pip install -e .[bench]` (torch, transformers).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

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


def bench_ours(cfg, batch: int, repeats: int) -> dict:
  graphdef, state = nnx.split(Transformer(cfg, rngs=nnx.Rngs(0)))
  sampler = Sampler(
    graphdef, cfg, max_prompt_len=PROMPT_LEN, max_new_tokens=NEW_TOKENS, eos_id=None, pad_id=0
  )
  tokens = np.random.default_rng(0).integers(1, cfg.vocab_size, (batch, PROMPT_LEN))
  mask = np.ones_like(tokens, bool)
  params = SamplingParams(temperature=1.0)
  run = lambda i: jax.block_until_ready(
    sampler.generate(state, tokens, mask, jax.random.key(i), params)
  )
  first = _timed(lambda: run(0))
  times = [_timed(lambda i=i: run(i + 1)) for i in range(repeats)]
  out = run(99)
  assert int(out.length_g.min()) == NEW_TOKENS
  return {"seconds": min(times), "compile_s": max(first - min(times), 0.0)}


def bench_peer(cfg, batch: int, repeats: int) -> dict:
  import torch
  import transformers

  hf_cfg = transformers.LlamaConfig(
    vocab_size=cfg.vocab_size,
    hidden_size=cfg.embed_dim,
    intermediate_size=cfg.mlp_dim,
    num_hidden_layers=cfg.num_layers,
    num_attention_heads=cfg.num_heads,
    num_key_value_heads=cfg.num_kv_heads,
    head_dim=cfg.head_dim,
    rms_norm_eps=cfg.norm_eps,
    rope_theta=cfg.rope_theta,
    tie_word_embeddings=cfg.tie_embeddings,
    max_position_embeddings=PROMPT_LEN + NEW_TOKENS,
    pad_token_id=0,
    eos_token_id=1,
    bos_token_id=2,
  )
  torch.manual_seed(0)
  model = transformers.LlamaForCausalLM._from_config(
    hf_cfg, attn_implementation="sdpa", torch_dtype=torch.float32
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
  return {"seconds": min(_timed(run) for _ in range(repeats)), "threads": torch.get_num_threads()}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch-sizes", default="1,16,64,256", help="comma-separated")
  parser.add_argument("--peer", action="store_true", help="also time HF transformers")
  parser.add_argument("--repeats", type=int, default=3, help="timed calls (best is kept)")
  args = parser.parse_args(argv)
  try:
    batches = [int(b) for b in args.batch_sizes.split(",")]
  except ValueError:
    parser.error("--batch-sizes must be comma-separated integers, e.g. 1,16,64.")
  cfg = get_preset("bench", dtype="float32", param_dtype="float32")
  peak = peak_matmul_flops()
  for batch in batches:
    ours = bench_ours(cfg, batch, args.repeats)
    flops = model_flops(cfg, batch)
    result = {
      "batch": batch,
      "prompt_len": PROMPT_LEN,
      "new_tokens": NEW_TOKENS,
      "tokens_per_s": round(batch * NEW_TOKENS / ours["seconds"], 1),
      "compile_s": round(ours["compile_s"], 2),
      "peak_fraction": round(flops / ours["seconds"] / peak, 4),
      "model_gflop_per_s": round(flops / ours["seconds"] / 1e9, 2),
      "peak_gflop_per_s": round(peak / 1e9, 2),
      "device": jax.devices()[0].device_kind,
    }
    if args.peer:
      peer = bench_peer(cfg, batch, args.repeats)
      result["peer"] = "transformers.generate (torch cpu, sdpa, kv cache)"
      result["peer_tokens_per_s"] = round(batch * NEW_TOKENS / peer["seconds"], 1)
      result["peer_peak_fraction"] = round(flops / peer["seconds"] / peak, 4)
      result["peer_threads"] = peer["threads"]
      result["ratio"] = round(result["tokens_per_s"] / result["peer_tokens_per_s"], 3)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
  main()

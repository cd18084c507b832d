"""Sampling from the policy: prefill + KV-cache decode, returning a typed `Rollout`."""

from jaxrl_verify.sampler.engine import Sampler, SamplerEngine
from jaxrl_verify.sampler.params import SamplingParams
from jaxrl_verify.sampler.sampling import sample_from_logits, truncated_logits

__all__ = ["Sampler", "SamplerEngine", "SamplingParams", "sample_from_logits", "truncated_logits"]

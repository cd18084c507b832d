"""Loading a shipped config file the way `--config=configs/NAME.py[:ARG]` does, for tests."""

import importlib.util
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]


def load_config(name: str, arg: str | None = None):
  """`configs/<name>.py`'s `get_config(arg)`."""
  spec = importlib.util.spec_from_file_location(name, REPO / "configs" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)

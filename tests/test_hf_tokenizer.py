"""HFTokenizer on a real byte-level BPE tokenizer.json (trained here with `tokenizers`), its
special-token configs (Qwen2.5 instruct/base, Llama-3), and the model directories that
carry it (save_model/load_model, import_hf, load_any, setup_lib.tokenizer_for)."""

import json
import os
import pickle
import shutil

import jax
import ml_collections as mlc
import numpy as np
import pytest
import tokenizers
from flax import nnx
from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

from jaxrl_verify import setup_lib
from jaxrl_verify.hf_tokenizer import HFTokenizer
from jaxrl_verify.models import export_hf, import_hf, io
from jaxrl_verify.models.config import get_preset
from jaxrl_verify.models.transformer import Transformer
from jaxrl_verify.sampler import Sampler, SamplingParams
from jaxrl_verify.sp_tokenizer import SentencePieceTokenizer
from jaxrl_verify.tokenizer import Tokenizer, load_any

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "hf")
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
LLAMA_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|finetune_right_pad_id|>"]
CORPUS = [f"Q: What is {a} + {b}?\nA: {a} + {b} = {a + b}. The answer is {a + b}." for a in
          range(0, 300, 7) for b in range(3, 60, 11)]  # fmt: skip
TEXTS = [
  "What is 12 + 30?",
  "A: 417 * 3 = 1251.\n\nThe answer is 1251.",
  "  leading spaces, tabs\tand unicode: π ≈ 3.14159, 数学 — ok",
  "",
]


def _bpe(specials) -> tokenizers.Tokenizer:
  """A byte-level BPE like Qwen2.5's: 256 byte symbols, merges, specials added at the end."""
  tok = tokenizers.Tokenizer(models.BPE())
  tok.normalizer = normalizers.NFC()
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(
    vocab_size=320, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
  )
  tok.train_from_iterator(CORPUS, trainer)
  tok.add_special_tokens(list(specials))
  return tok


def _write(directory, tok: tokenizers.Tokenizer, config=None, special_map=None):
  directory.mkdir(parents=True, exist_ok=True)
  tok.save(str(directory / "tokenizer.json"))
  if config is not None:
    (directory / "tokenizer_config.json").write_text(json.dumps(config))
  if special_map is not None:
    (directory / "special_tokens_map.json").write_text(json.dumps(special_map))
  return directory


def _qwen_config(eos: str) -> dict:
  return {
    "tokenizer_class": "Qwen2Tokenizer",
    "bos_token": None,
    "eos_token": eos,
    "pad_token": "<|endoftext|>",
    "model_max_length": 32768,
    "chat_template": "{% for m in messages %}<|im_start|>{{ m.content }}<|im_end|>{% endfor %}",
  }


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
  """Tokenizer directories: Qwen2.5 instruct and base, Llama-3 (special_tokens_map, no pad)."""
  root = tmp_path_factory.mktemp("hf_tok")
  qwen, llama = _bpe(QWEN_SPECIALS), _bpe(LLAMA_SPECIALS)
  llama_map = {
    "bos_token": {"content": "<|begin_of_text|>", "lstrip": False, "special": True},
    "eos_token": {"content": "<|end_of_text|>", "lstrip": False, "special": True},
  }
  return {
    "raw": qwen,
    "instruct": _write(root / "instruct", qwen, _qwen_config("<|im_end|>")),
    "base": _write(root / "base", qwen, _qwen_config("<|endoftext|>")),
    "llama": _write(root / "llama", llama, {"bos_token": None}, llama_map),
  }


def test_round_trip_and_ids_match_the_tokenizers_library(dirs):
  tok, raw = HFTokenizer.load(dirs["instruct"]), dirs["raw"]
  assert tok.vocab_size == raw.get_vocab_size(with_added_tokens=True) == 320 + 3
  for text in TEXTS + CORPUS[:20]:
    ids = tok.encode(text)
    assert ids == raw.encode(text, add_special_tokens=False).ids
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text
  assert len(tok.encode(CORPUS[0])) < 0.6 * len(CORPUS[0].encode())  # merges were learned


def test_special_ids_from_the_configs(dirs):
  raw = dirs["raw"]
  instruct, base = HFTokenizer.load(dirs["instruct"]), HFTokenizer.load(dirs["base"])
  assert (instruct.eos_id, instruct.pad_id, instruct.bos_id) == (
    raw.token_to_id("<|im_end|>"),
    raw.token_to_id("<|endoftext|>"),
    None,
  )
  assert base.eos_id == base.pad_id == raw.token_to_id("<|endoftext|>")
  # special_tokens_map.json (AddedToken dicts) overrides tokenizer_config.json; no pad named,
  # so the reserved Llama-3.1 pad token is used.
  llama = HFTokenizer.load(dirs["llama"] / "tokenizer.json")
  ids = [llama.id_to_piece(i) for i in (llama.bos_id, llama.eos_id, llama.pad_id)]
  assert ids == LLAMA_SPECIALS
  assert llama.encode("1+1", add_bos=True, add_eos=True) == (
    [llama.bos_id] + llama.encode("1+1") + [llama.eos_id]
  )
  # Without a bos, add_bos is a no-op; eos is still appended.
  assert instruct.encode("1+1", add_bos=True, add_eos=True) == instruct.encode("1+1") + [
    instruct.eos_id
  ]
  # A chat template in the text encodes to the special ids and decodes back to its text.
  chat = "<|im_start|>user\n2+2?<|endoftext|>"
  ids = instruct.encode(chat)
  assert ids[0] == raw.token_to_id("<|im_start|>") and raw.token_to_id("<|endoftext|>") in ids
  assert instruct.decode(ids) == "<|im_start|>user\n2+2?"  # pad skipped, as documented


def test_pad_falls_back_to_eos_without_a_reserved_token(tmp_path, dirs):
  tok = HFTokenizer.load(_write(tmp_path / "q", dirs["raw"], {"eos_token": "<|im_end|>"}))
  assert tok.pad_id == tok.eos_id == dirs["raw"].token_to_id("<|im_end|>")
  # No config at all: eos is the first known end-of-text token in the vocabulary.
  bare = HFTokenizer.load(_write(tmp_path / "bare", dirs["raw"]) / "tokenizer.json")
  assert bare.eos_id == bare.pad_id == dirs["raw"].token_to_id("<|endoftext|>")


@pytest.mark.parametrize("kind", ["instruct", "base", "llama"])
def test_encode_batch_pads_masks_truncates_and_decodes(dirs, kind):
  tok = HFTokenizer.load(dirs[kind])
  lengths = [len(tok.encode(t, add_bos=True)) for t in TEXTS]
  p = max(lengths) + 2
  tokens_bp, mask_bp = tok.encode_batch(TEXTS, p, add_bos=True)
  assert tokens_bp.dtype == np.int32 and mask_bp.sum(1).tolist() == lengths
  for row, text in enumerate(TEXTS):
    n = lengths[row]
    assert tokens_bp[row, p - n :].tolist() == tok.encode(text, add_bos=True)
    assert (tokens_bp[row, : p - n] == tok.pad_id).all() and mask_bp[row, p - n :].all()
  assert tok.decode_batch(tokens_bp, mask_bp) == TEXTS
  # Without the mask too: leading pads are skipped even when pad == eos (Qwen2.5 base).
  assert tok.decode_batch(tokens_bp) == TEXTS
  right_bp, right_mask_bp = tok.encode_batch(TEXTS, p, left_pad=False, add_eos=True)
  assert right_mask_bp.sum(1).tolist() == [len(tok.encode(t)) + 1 for t in TEXTS]
  assert tok.decode_batch(right_bp) == TEXTS  # stops at the appended eos
  with pytest.raises(ValueError, match="Text 0 has .* more than max_len=4"):
    tok.encode_batch(TEXTS, 4)
  ids = tok.encode(TEXTS[1])
  left_bp, _ = tok.encode_batch(TEXTS[1:2], 4, truncate="left")
  cut_bp, _ = tok.encode_batch(TEXTS[1:2], 4, truncate="right")
  assert left_bp[0].tolist() == ids[-4:] and cut_bp[0].tolist() == ids[:4]


def test_decode_stops_at_eos_and_skips_pad_bos_and_ids_beyond_the_vocabulary(dirs):
  tok = HFTokenizer.load(dirs["llama"])
  body = tok.encode("7 + 5 = 12")
  ids = [tok.pad_id, tok.bos_id] + body[:2] + [tok.pad_id, tok.vocab_size, 10**6] + body[2:]
  assert tok.decode(ids + [tok.eos_id] + tok.encode(" garbage")) == "7 + 5 = 12"
  base = HFTokenizer.load(dirs["base"])  # pad == eos: a non-leading one ends the text
  ids = [base.pad_id] * 3 + base.encode("3*4") + [base.eos_id] * 2 + base.encode("junk")
  assert base.decode(np.asarray(ids)) == "3*4"
  assert base.decode([base.eos_id] * 4) == ""


def test_pickle_and_files_round_trip(dirs):
  tok = HFTokenizer.load(dirs["instruct"])
  for other in (pickle.loads(pickle.dumps(tok)), HFTokenizer.from_files(tok.files())):
    assert (other.vocab_size, other.eos_id, other.pad_id, other.bos_id) == (
      tok.vocab_size,
      tok.eos_id,
      tok.pad_id,
      tok.bos_id,
    )
    assert other.encode(TEXTS[2]) == tok.encode(TEXTS[2])
  assert pickle.loads(pickle.dumps(tok)).path == tok.path.__str__()
  config = json.loads(tok.files()["tokenizer_config.json"])
  assert config["chat_template"] == _qwen_config("")["chat_template"]  # carried along


def _random_params(cfg):
  rng = np.random.default_rng(0)
  shapes = nnx.state(nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0))), nnx.Param)
  return jax.tree.map(
    lambda a: rng.normal(size=a.shape).astype(np.float32) * 0.3, shapes.to_pure_dict()
  )


def test_save_model_and_load_model_carry_it(dirs, tmp_path):
  tok = HFTokenizer.load(dirs["llama"])
  cfg = get_preset("tiny", vocab_size=384, num_valid_tokens=tok.vocab_size)
  io.save_model(tmp_path / "m", cfg, _random_params(cfg), tokenizer=tok)
  assert sorted(p for p in os.listdir(tmp_path / "m") if p.startswith("tok")) == [
    "tokenizer.json",
    "tokenizer_config.json",
  ]
  for loaded in (io.load_model(tmp_path / "m").tokenizer, load_any(tmp_path / "m")):
    assert isinstance(loaded, HFTokenizer) and loaded.files() == tok.files()
    assert (loaded.bos_id, loaded.eos_id, loaded.pad_id) == (tok.bos_id, tok.eos_id, tok.pad_id)


def test_import_hf_carries_tokenizer_json(dirs, tmp_path):
  hf_dir = tmp_path / "qwen2"
  shutil.copytree(os.path.join(FIXTURES, "qwen2"), hf_dir)
  for name in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(dirs["instruct"] / name, hf_dir / name)
  import_hf.import_hf(hf_dir, tmp_path / "out", dtype="float32")
  got, want = io.load_model(tmp_path / "out").tokenizer, HFTokenizer.load(dirs["instruct"])
  assert isinstance(got, HFTokenizer) and got.files() == want.files()
  assert got.encode(TEXTS[1]) == want.encode(TEXTS[1]) and got.eos_id == want.eos_id
  # ... and the export back to safetensors carries it too.
  export_hf.export_hf(tmp_path / "out", tmp_path / "exported", arch="qwen2")
  assert HFTokenizer.load(tmp_path / "exported").files() == want.files()
  # A broken tokenizer.json is skipped (the weights still import), like a bad tokenizer.model.
  (hf_dir / "tokenizer.json").write_text("{not json")
  import_hf.import_hf(hf_dir, tmp_path / "out2", dtype="float32")
  assert io.load_model(tmp_path / "out2").tokenizer is None


def test_load_any_picks_the_class_and_errors_clearly(dirs, tmp_path):
  (tmp_path / "sp").mkdir()
  sp = SentencePieceTokenizer.train(CORPUS, vocab_size=300, model_prefix_or_dir=tmp_path / "sp")
  assert isinstance(load_any(tmp_path / "sp"), SentencePieceTokenizer)
  # Both implement the one protocol the pipeline, sampler and trainer are written against.
  assert isinstance(sp, Tokenizer) and isinstance(load_any(dirs["base"]), Tokenizer)
  assert load_any(sp.path).encode(TEXTS[1]) == sp.encode(TEXTS[1])
  assert isinstance(load_any(dirs["base"] / "tokenizer.json"), HFTokenizer)
  (tmp_path / "empty").mkdir()
  for missing in (tmp_path / "empty", tmp_path / "nope.model", tmp_path / "nope.json"):
    with pytest.raises(FileNotFoundError, match="expected a Hugging Face tokenizer.json"):
      load_any(missing)
  bad = _write(tmp_path / "bad", dirs["raw"], {"eos_token": "<|eot_id|>"})
  with pytest.raises(ValueError, match=r"eos_token '<\|eot_id\|>' .* not in its vocabulary"):
    load_any(bad)
  (bad / "tokenizer_config.json").write_text("[1, 2]")
  with pytest.raises(ValueError, match="tokenizer_config.json .* not a JSON object"):
    load_any(bad)
  (bad / "tokenizer.json").write_text("{}")
  with pytest.raises(ValueError, match="not a valid Hugging Face tokenizer"):
    load_any(bad)
  no_eos = _bpe(["<|im_start|>"])
  with pytest.raises(ValueError, match="names no eos token"):
    load_any(_write(tmp_path / "no_eos", no_eos))


def test_train_setup_tokenizer_takes_a_tokenizer_json_path(dirs):
  config = mlc.ConfigDict({"tokenizer": {"path": str(dirs["instruct"])}, "model": {}})
  tok = setup_lib.tokenizer_for(config, None, "", "")
  assert isinstance(tok, HFTokenizer) and tok.eos_id == dirs["raw"].token_to_id("<|im_end|>")


def test_sampler_with_pad_equal_to_eos(dirs):
  """Qwen2.5 base pads with its eos: prompt padding is masked, so its id cannot matter."""
  tok = HFTokenizer.load(dirs["base"])
  cfg = get_preset("tiny", vocab_size=384, num_valid_tokens=tok.vocab_size)
  graphdef, state = nnx.split(Transformer(cfg, rngs=nnx.Rngs(0)))
  tokens_bp, mask_bp = tok.encode_batch(TEXTS[:3], 72, add_bos=True)
  sampler = Sampler(
    graphdef, cfg, max_prompt_len=72, max_new_tokens=6, eos_id=tok.eos_id, pad_id=tok.pad_id
  )
  greedy = SamplingParams(temperature=0.0)
  rollout = sampler.generate(state, tokens_bp, mask_bp, params=greedy)
  other = sampler.generate(state, np.where(mask_bp, tokens_bp, 5), mask_bp, params=greedy)
  np.testing.assert_array_equal(rollout.tokens_gt, other.tokens_gt)
  np.testing.assert_array_equal(rollout.logp_gt, other.logp_gt)
  tokens_gt, mask_gt = np.asarray(rollout.tokens_gt), np.asarray(rollout.mask_gt)
  assert (tokens_gt < tok.vocab_size).all()  # ids past the tokenizer are never sampled
  want = [tok.decode(row[:n]) for row, n in zip(tokens_gt, np.asarray(rollout.length_g))]
  assert tok.decode_batch(tokens_gt, mask_gt) == want

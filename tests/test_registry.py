"""One registry for every named choice; hyperparameters declared once and reached by the config."""

import numpy as np
import pytest

from jaxrl_verify import config_lib, experience, setup_lib
from jaxrl_verify.data import tasks
from jaxrl_verify.registry import Registry, UnknownNameError
from jaxrl_verify.rl import advantages, losses
from jaxrl_verify.rl.advantages import AdvantageInputs
from jaxrl_verify.verifiers import base as verifiers


def test_hparams_are_the_declared_keyword_defaults_without_structural_names():
  assert advantages.ADVANTAGES.hparams("grpo") == {"eps": 1e-6, "std_ddof": 1}
  assert advantages.ADVANTAGES.hparams("gae") == {"gamma": 1.0, "lam": 0.95, "lambda_critic": None}
  assert advantages.ADVANTAGES.hparams("reinforce_pp") == {
    "gamma": 1.0,
    "eps": 1e-8,
    "group_baseline": False,
  }
  assert advantages.ADVANTAGES.hparams("rloo") == {}
  assert losses.POLICY_LOSSES.hparams("ppo_clip") == {
    "eps_low": 0.2,
    "eps_high": None,
    "dual_clip_c": None,
  }


def test_unknown_names_fail_in_one_style_everywhere():
  for registry_get, kind in (
    (advantages.ADVANTAGES.get, "advantage estimator"),
    (losses.POLICY_LOSSES.get, "policy loss"),
    (verifiers.get, "verifier"),
    (tasks.get_task, "task"),
  ):
    with pytest.raises(UnknownNameError, match=f"Unknown {kind} 'nope'; choose one of"):
      registry_get("nope")
  assert issubclass(UnknownNameError, ValueError)
  with pytest.raises(UnknownNameError, match=r"no hyperparameter 'ddof'.*\['eps', 'std_ddof'\]"):
    advantages.ADVANTAGES.bind("grpo", {"ddof": 0})


def test_registering_twice_is_an_error_unless_equal():
  reg = Registry("widget")
  f = reg.register("a")(lambda: 1)
  assert reg.register("a", f) is f  # The same entry again (a module imported twice) is fine.
  with pytest.raises(ValueError, match="already registered"):
    reg.register("a", lambda: 2)
  assert reg.names() == ["a"] and "a" in reg and list(reg) == ["a"]


def test_base_config_has_a_section_per_registered_estimator_and_loss():
  c = config_lib.base_config()
  assert set(c.algo.advantage_hparams) == set(advantages.ADVANTAGES.names())
  assert set(c.algo.loss_hparams) == set(losses.POLICY_LOSSES.names())
  assert c.algo.loss_hparams.ppo_clip.eps_high == 0.28  # The project's one changed default.
  # A None default is a typed placeholder: it can be set later (as the command line does).
  c.algo.advantage_hparams.gae.lambda_critic = 1.0
  with pytest.raises(TypeError):
    c.algo.advantage_hparams.gae.lambda_critic = "one"


def _grpo_numpy(r_bk, eps, ddof):
  mean = r_bk.mean(1, keepdims=True)
  return ((r_bk - mean) / (r_bk.std(1, ddof=ddof, keepdims=True) + eps)).reshape(-1)


@pytest.mark.parametrize("eps,ddof", [(1e-6, 1), (0.5, 0)])
def test_config_hyperparameters_reach_the_estimator(eps, ddof):
  """GRPO's eps and std_ddof set in the config change the advantages as numpy says."""
  c = config_lib.base_config()
  c.rollout.group_size = 4
  c.algo.advantage_hparams.grpo.eps = eps
  c.algo.advantage_hparams.grpo.std_ddof = ddof
  config_lib.validate(c)
  exp_cfg = setup_lib.experience_config(c, "math")
  assert dict(exp_cfg.advantage_hparams) == {"eps": eps, "std_ddof": ddof}
  scorer = experience.DeviceScorer(None, None, exp_cfg)
  r_bk = np.array([[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0]], np.float32)
  mask_gt = np.ones((8, 3), bool)
  zeros = np.zeros((8, 3), np.float32)
  adv_gt, _ = scorer.advantages(
    r_bk.reshape(-1), np.ones(8, bool), mask_gt, zeros, zeros, zeros, np.ones(8, bool)
  )
  np.testing.assert_allclose(np.asarray(adv_gt)[:, 0], _grpo_numpy(r_bk, eps, ddof), rtol=1e-5)


def test_reinforce_pp_group_baseline_is_reachable():
  c = config_lib.base_config()
  c.algo.advantage = "reinforce_pp"
  c.algo.advantage_hparams.reinforce_pp.group_baseline = True
  fn = advantages.ADVANTAGES.bind(
    "reinforce_pp", dict(setup_lib.experience_config(c, "math").advantage_hparams)
  )
  r_g = np.array([1.0, 1.0, 0.0, 0.0], np.float32)  # Group means 1 and 0: nothing to learn.
  adv_gt, _ = fn(AdvantageInputs(reward_g=r_g, mask_gt=np.ones((4, 2), bool)), group_size=2)
  np.testing.assert_allclose(np.asarray(adv_gt), 0.0, atol=1e-6)


def test_loss_hyperparameters_reach_the_update_and_are_validated():
  c = config_lib.base_config()
  c.algo.loss_hparams.ppo_clip.dual_clip_c = 3.0
  assert dict(setup_lib.loss_config(c).policy_loss_hparams) == {
    "dual_clip_c": 3.0,
    "eps_high": 0.28,
    "eps_low": 0.2,
  }
  c.algo.loss_hparams.ppo_clip.dual_clip_c = 0.5
  with pytest.raises(
    ValueError, match=r"config\.algo\.loss_hparams\.ppo_clip\.dual_clip_c is 0\.5"
  ):
    config_lib.validate(c)
  c.algo.loss_hparams.ppo_clip.dual_clip_c = None
  c.algo.policy_loss = "pg"
  assert setup_lib.loss_config(c).policy_loss_hparams == ()
  c.algo.policy_loss = "trpo"
  with pytest.raises(ValueError, match=r"config\.algo\.policy_loss is 'trpo', unknown"):
    config_lib.validate(c)


def test_grpo_process_is_refused_by_the_rl_config_until_a_step_reward_source_exists():
  c = config_lib.base_config()
  c.algo.advantage = "grpo_process"
  with pytest.raises(ValueError, match=r"config\.algo\.advantage is 'grpo_process'.*use 'grpo'"):
    config_lib.validate(c)

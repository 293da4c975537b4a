"""Attacks on distilled sets, on their transmission and on federated distillation.

Every attack follows one contract (:mod:`securedd.attacks.base`): it registers in
:data:`ATTACKS`, is configured at construction from a frozen ``Params`` dataclass, is
applied to a target by calling it, and returns an :class:`AttackResult` with ``to_dict()``
and a one-line ``summary``. ``securedd list attacks`` lists them and ``securedd attack
NAME`` runs them.

- ``leakage``: the SFDD server's gradient inversion of a worker's round (:mod:`.leakage`).
- ``doorping``: malicious SFDD workers plant a backdoor (:mod:`.doorping`).
- ``loss-threshold``, ``lira``: membership inference (:mod:`.membership`).
- ``deepfool``: evasion, accuracy under DeepFool (:mod:`.robustness`, needs foolbox).
- ``key-search``: guessing a SecDD set's key (:mod:`.key_search`).
- ``train-on-intercept``, ``pretrained-finetune``, ``kd-from-labels``: training fresh (or
  publicly pretrained) networks every standard way on an intercepted SecDD set, without its
  key, or a student through the attacker's own unlabelled images (:mod:`.intercept`).
- ``poisoning``: DD's one-step poisoning (:mod:`.poisoning`).
"""

from securedd.attacks import doorping, intercept, key_search, leakage, membership, poisoning, robustness
from securedd.attacks.base import ATTACKS, Attack, AttackResult, NoParams, list_attacks

__all__ = ["ATTACKS", "Attack", "AttackResult", "NoParams", "doorping", "intercept", "key_search", "leakage", "list_attacks",
           "membership", "poisoning", "robustness"]

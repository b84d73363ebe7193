"""What a model was trained with: the params it read, under DVC's names for them, and its seed, with their digest.

Each model file and each test-metrics file carries this record, so that a model (or its metrics) trained with other
params than params.yaml's is refused wherever it is used, however it arrived: a stale workspace, a swapped
run-cache entry, a file copied by hand.
"""

import hashlib
import json

from mnist_dnn.errors import UserError


def digest(params, seed):
    """SHA-256 of the canonical JSON of ``params`` and ``seed``."""
    return hashlib.sha256(json.dumps([params, seed], sort_keys=True).encode()).hexdigest()


def record(params, seed):
    """The record of a run that read ``params`` (DVC name → value, e.g. ``optimizer`` → {name, lr}) with ``seed``."""
    return {"params": params, "seed": seed, "sha256": digest(params, seed)}


def checked(trained_with):
    """``trained_with`` if it is a record whose digest matches its values; a UserError saying what is wrong."""
    if not isinstance(trained_with, dict) or set(trained_with) != {"params", "seed", "sha256"}:
        raise UserError("trained_with is not a record of params, seed and sha256")
    params, seed = trained_with["params"], trained_with["seed"]
    if not isinstance(params, dict) or not isinstance(seed, int) or trained_with["sha256"] != digest(params, seed):
        raise UserError("trained_with does not match its sha256")
    return trained_with


def flat(params, prefix=""):
    """``params`` as dotted keys → leaf values, in their order: {"train": {"epochs": 15}} → {"train.epochs": 15}."""
    leaves = {}
    for key, value in params.items():
        if isinstance(value, dict) and value:
            leaves.update(flat(value, f"{prefix}{key}."))
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


def first_difference(recorded, expected):
    """The first dotted key whose value differs between two records' params and seed: (key, recorded, expected),
    with None for a missing key; None if they agree."""
    found = flat(recorded["params"]) | {"seed": recorded["seed"]}
    wanted = flat(expected["params"]) | {"seed": expected["seed"]}
    for key in [*found, *(key for key in wanted if key not in found)]:
        if found.get(key) != wanted.get(key):
            return key, found.get(key), wanted.get(key)
    return None


def shown(value):
    return "none" if value is None else json.dumps(value)


def check(trained_with, expected, source, command):
    """A UserError naming ``source``'s first key trained otherwise than ``expected`` says, or that it records no
    training params, and ``command`` to fix it."""
    if trained_with is None:
        raise UserError(f"{source}: records no training params; run `{command}`")
    try:
        difference = first_difference(checked(trained_with), expected)
    except UserError as err:
        raise UserError(f"{source}: {err}; run `{command}`") from None
    if difference:
        key, got, want = difference
        raise UserError(f"{source}: trained with {key} {shown(got)}, but params.yaml has {shown(want)}; "
                        f"run `{command}`")


def describe(trained_with):
    """The record in a phrase, e.g. ``adam lr 0.001, 15 epochs, batch 100, seed 777, keep_prob 0.7 (params 1a2b…)``."""
    values = flat(trained_with["params"])
    extras = [f"{key} {shown(value)}" for key, value in values.items()
              if key not in ("optimizer.name", "optimizer.lr", "train.epochs", "train.batch_size", "train.seed")
              and not key.startswith("variants.") and value is not False]
    parts = [f"{values.get('optimizer.name')} lr {values.get('optimizer.lr')}", f"{values.get('train.epochs')} epochs",
             f"batch {values.get('train.batch_size')}", f"seed {trained_with['seed']}", *extras]
    return f"{', '.join(parts)} (params {trained_with['sha256'][:12]})"

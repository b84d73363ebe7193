"""Optimizers chosen by name from params.yaml, with four TensorFlow 1.x optimizers that PyTorch lacks.

The four keep all their state in tensors on the parameters' device and never read a tensor's value on the host,
so that their ``step`` can be recorded in a CUDA graph.
"""

import inspect
from typing import Annotated

import torch
from pydantic import Field

from mnist_dnn.kinds import Beta, Fraction, NonNegative, Positive


def _check_positive(**hyperparameters):
    """Raise ValueError naming the first hyperparameter that is not > 0."""
    for name, value in hyperparameters.items():
        if not value > 0.0:
            raise ValueError(f"Invalid {name}: {value} (must be > 0)")


def _check_nonnegative(**hyperparameters):
    """Raise ValueError naming the first hyperparameter that is not >= 0."""
    for name, value in hyperparameters.items():
        if not value >= 0.0:
            raise ValueError(f"Invalid {name}: {value} (must be >= 0)")


def _proximal_step(param, grad, lr, l1, l2):
    """FOBOS step in place: ``param - lr*grad``, soft-thresholded by ``lr*l1``, shrunk by ``1 + lr*l2``."""
    prox = param - lr * grad
    param.copy_(prox.sign() * (prox.abs() - lr * l1).clamp_(min=0.0) / (1.0 + lr * l2))


class _ElementwiseOptimizer(torch.optim.Optimizer):
    """Shared ``step``: evaluates ``closure``, then calls ``_update`` on each parameter that has a gradient."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    self._update(param, param.grad, self.state[param], group)
        return loss


class Ftrl(_ElementwiseOptimizer):
    """FTRL-Proximal (McMahan et al., 2013) as TF's ``tf.compat.v1.train.FtrlOptimizer`` (ops ApplyFtrl, ApplyFtrlV2).

    As in TF, ``l2_shrinkage`` enters the linear term but not the accumulator, and ``beta`` adds ``beta/(2*lr)`` to l2.
    """

    def __init__(
        self, params, lr=1e-3, lr_power=-0.5, initial_accumulator_value=0.1, l1=0.0, l2=0.0, l2_shrinkage=0.0, beta=0.0
    ):
        _check_positive(lr=lr)
        if not lr_power <= 0.0:
            raise ValueError(f"Invalid lr_power: {lr_power} (must be <= 0)")
        hyperparameters = dict(
            initial_accumulator_value=initial_accumulator_value, l1=l1, l2=l2, l2_shrinkage=l2_shrinkage, beta=beta
        )
        _check_nonnegative(**hyperparameters)
        super().__init__(params, dict(lr=lr, lr_power=lr_power, **hyperparameters))

    def _update(self, param, grad, state, group):
        if not state:
            state["accumulator"] = torch.full_like(param, group["initial_accumulator_value"])
            state["linear"] = torch.zeros_like(param)
        accumulator, linear = state["accumulator"], state["linear"]
        lr, power, l1 = group["lr"], -group["lr_power"], group["l1"]
        l2 = group["l2"] + group["beta"] / (2.0 * lr)
        new_accumulator = accumulator + grad * grad
        sigma = (new_accumulator.pow(power) - accumulator.pow(power)) / lr
        linear.add_(grad + 2.0 * group["l2_shrinkage"] * param - sigma * param)
        quadratic = new_accumulator.pow(power) / lr + 2.0 * l2
        param.copy_(torch.where(linear.abs() > l1, (l1 * linear.sign() - linear) / quadratic, 0.0))
        accumulator.copy_(new_accumulator)


class ProximalGradientDescent(_ElementwiseOptimizer):
    """Proximal gradient descent (FOBOS) as TF's ``ProximalGradientDescentOptimizer``.

    Matches the op ApplyProximalGradientDescent.
    """

    def __init__(self, params, lr=1e-3, l1=0.0, l2=0.0):
        _check_positive(lr=lr)
        _check_nonnegative(l1=l1, l2=l2)
        super().__init__(params, dict(lr=lr, l1=l1, l2=l2))

    def _update(self, param, grad, state, group):
        _proximal_step(param, grad, group["lr"], group["l1"], group["l2"])


class ProximalAdagrad(_ElementwiseOptimizer):
    """FOBOS with Adagrad step sizes as TF's ``ProximalAdagradOptimizer`` (op ApplyProximalAdagrad).

    As in TF, l1 and l2 are scaled by the per-element rate ``lr / sqrt(accumulator)``, not by ``lr``.
    """

    def __init__(self, params, lr=1e-3, initial_accumulator_value=0.1, l1=0.0, l2=0.0):
        _check_positive(lr=lr, initial_accumulator_value=initial_accumulator_value)
        _check_nonnegative(l1=l1, l2=l2)
        super().__init__(params, dict(lr=lr, initial_accumulator_value=initial_accumulator_value, l1=l1, l2=l2))

    def _update(self, param, grad, state, group):
        if not state:
            state["accumulator"] = torch.full_like(param, group["initial_accumulator_value"])
        accumulator = state["accumulator"]
        accumulator.addcmul_(grad, grad)
        _proximal_step(param, grad, group["lr"] * accumulator.rsqrt(), group["l1"], group["l2"])


class AdagradDA(_ElementwiseOptimizer):
    """Adagrad dual averaging (Duchi et al., 2011) as TF's ``AdagradDAOptimizer`` (op ApplyAdagradDA).

    The step ``t`` counts this parameter's updates, including the current one (TF passes ``global_step + 1``); it is a
    float64 tensor on the parameter's device, so that a CUDA graph replays the count rather than a constant.
    """

    def __init__(self, params, lr=1e-3, initial_gradient_squared_accumulator_value=0.1, l1=0.0, l2=0.0):
        initial = initial_gradient_squared_accumulator_value
        _check_positive(lr=lr, initial_gradient_squared_accumulator_value=initial)
        _check_nonnegative(l1=l1, l2=l2)
        super().__init__(params, dict(lr=lr, initial_gradient_squared_accumulator_value=initial, l1=l1, l2=l2))

    def _update(self, param, grad, state, group):
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float64, device=param.device)
            state["gradient_accumulator"] = torch.zeros_like(param)
            initial = group["initial_gradient_squared_accumulator_value"]
            state["gradient_squared_accumulator"] = torch.full_like(param, initial)
        state["step"].add_(1)
        step, lr, l1, l2 = state["step"], group["lr"], group["l1"], group["l2"]
        gradients, squares = state["gradient_accumulator"], state["gradient_squared_accumulator"]
        gradients.add_(grad)
        squares.addcmul_(grad, grad)
        thresholded = gradients.sign() * (gradients.abs() - l1 * step).clamp_(min=0.0)
        param.copy_(-lr * thresholded / (l2 * (step * lr) + squares.sqrt()))


OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adadelta": torch.optim.Adadelta,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
    "sgd": torch.optim.SGD,
    "ftrl": Ftrl,
    "proximal_gd": ProximalGradientDescent,
    "proximal_adagrad": ProximalAdagrad,
    "adagrad_da": AdagradDA,
}
# Every hyperparameter of each optimizer above besides lr, and what its value must be: the one table params.yaml's are
# checked by (config.py; tests/test_config.py checks it against each class's signature).
HYPERPARAMETERS = {
    "adam": {"betas": Annotated[list[Beta], Field(min_length=2, max_length=2)], "eps": NonNegative,
             "weight_decay": NonNegative, "amsgrad": bool, "maximize": bool, "decoupled_weight_decay": bool},
    "adadelta": {"rho": Fraction, "eps": NonNegative, "weight_decay": NonNegative, "maximize": bool},
    "adagrad": {"lr_decay": NonNegative, "weight_decay": NonNegative, "initial_accumulator_value": NonNegative,
                "eps": NonNegative, "maximize": bool},
    "rmsprop": {"alpha": NonNegative, "eps": NonNegative, "weight_decay": NonNegative, "momentum": NonNegative,
                "centered": bool, "maximize": bool},
    "sgd": {"momentum": NonNegative, "dampening": Fraction, "weight_decay": NonNegative, "nesterov": bool,
            "maximize": bool},
    "ftrl": {"lr_power": Annotated[float, Field(le=0)], "initial_accumulator_value": NonNegative, "l1": NonNegative,
             "l2": NonNegative, "l2_shrinkage": NonNegative, "beta": NonNegative},
    "proximal_gd": {"l1": NonNegative, "l2": NonNegative},
    "proximal_adagrad": {"initial_accumulator_value": Positive, "l1": NonNegative, "l2": NonNegative},
    "adagrad_da": {"initial_gradient_squared_accumulator_value": Positive, "l1": NonNegative, "l2": NonNegative},
}


def build_optimizer(name, parameters, lr, capturable=False, **hyperparameters):
    """The optimizer called ``name`` over ``parameters`` with learning rate ``lr`` and any extra ``hyperparameters``.

    PyTorch optimizers that offer a fused kernel (Adam, SGD, Adagrad) get it: the same update in one call per step.
    With ``capturable`` (parameters on a GPU), those that offer it (Adam, Adadelta, RMSprop) keep their step count on
    the device, so that their step can be recorded in a CUDA graph.
    """
    optimizer = OPTIMIZERS[name]
    accepted = inspect.signature(optimizer).parameters
    if "fused" in accepted:
        hyperparameters.setdefault("fused", True)
    if capturable and "capturable" in accepted:
        hyperparameters.setdefault("capturable", True)
    return optimizer(parameters, lr=lr, **hyperparameters)


def is_capturable(optimizer):
    """Whether ``optimizer.step`` can be recorded in a CUDA graph and replayed: state on the device, no host sync.

    Ours always; SGD, which counts no steps; PyTorch's others when built with ``capturable=True``. Adagrad has no such
    mode (its step count stays on the CPU), so it runs eagerly. A graph replays the learning rate it was recorded with.
    """
    if isinstance(optimizer, (_ElementwiseOptimizer, torch.optim.SGD)):
        return True
    return all(group.get("capturable", False) for group in optimizer.param_groups)

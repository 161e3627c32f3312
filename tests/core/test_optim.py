"""Optimizers and schedulers against PyTorch, step for step, from the same weights and gradients."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch

import interop
import interop.nn as nn
import interop.optim as optim

PYTORCH_ONLY_KEYS = {"foreach", "fused", "differentiable", "capturable"}

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.5, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.5, weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True, maximize=True)),
    ("Adam", dict(lr=0.01, betas=(0.3, 0.999), weight_decay=0.1, decoupled_weight_decay=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True, maximize=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True)),
    ("RMSprop", dict(lr=0.01, alpha=0.3, centered=True, maximize=True)),
]
TOL = {np.float64: dict(rtol=1e-9, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-6)}
SHAPES = [(5, 4), (4,), (3, 2)]


def make_params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    return ([nn.Parameter(interop.tensor(a)) for a in arrays],
            [torch.nn.Parameter(torch.tensor(a)) for a in arrays])


def grads_at(step, dtype):
    """Fresh gradients each step; the last parameter only gets one on even steps (the others skip it)."""
    rng = np.random.default_rng(100 + step)
    return [None if i == len(SHAPES) - 1 and step % 2 else rng.standard_normal(s).astype(dtype)
            for i, s in enumerate(SHAPES)]


def set_grads(params, step, dtype, lib=interop):
    for p, g in zip(params, grads_at(step, dtype)):
        p.grad = None if g is None else lib.tensor(g)


def assert_same(ours, theirs, dtype, msg=""):
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(force=True), t.detach().numpy(), **TOL[dtype], err_msg=msg)


def run_steps(opt, topt, ours, theirs, dtype, steps, start=0):
    for step in range(start, start + steps):
        set_grads(ours, step, dtype)
        set_grads(theirs, step, dtype, torch)
        opt.step()
        topt.step()
        assert_same(ours, theirs, dtype, f"step {step}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, kwargs", CASES, ids=[f"{n}-{'-'.join(k)}" for n, k in CASES])
def test_matches_pytorch_step_for_step(name, kwargs, dtype):
    ours, theirs = make_params(dtype)
    params = [p.data for p in ours]
    opt, topt = getattr(optim, name)(ours, **kwargs), getattr(torch.optim, name)(theirs, **kwargs)
    run_steps(opt, topt, ours, theirs, dtype, 5)
    assert all(p.data is a for p, a in zip(ours, params))  # updated in place
    ours_sd, theirs_sd = opt.state_dict(), topt.state_dict()
    assert ours_sd["state"].keys() == theirs_sd["state"].keys()
    for i, st in theirs_sd["state"].items():
        assert list(ours_sd["state"][i]) == list(st)
        for k, v in st.items():
            want = interop.dtypes.as_dtype(str(v.dtype).removeprefix("torch."))
            assert ours_sd["state"][i][k].dtype == want
            np.testing.assert_allclose(ours_sd["state"][i][k].numpy(), v.numpy(), **TOL[dtype])
    assert ours_sd["param_groups"] == [{k: v for k, v in g.items() if k not in PYTORCH_ONLY_KEYS}
                                       for g in theirs_sd["param_groups"]]


@pytest.mark.parametrize("name, kwargs", [CASES[3], CASES[8], CASES[14]])
def test_param_groups_with_their_own_options(name, kwargs):
    ours, theirs = make_params(np.float64)
    other = {"lr": kwargs["lr"] * 3, "weight_decay": 0.2}
    opt = getattr(optim, name)([{"params": ours[:2]}, {"params": ours[2:], **other}], **kwargs)
    topt = getattr(torch.optim, name)([{"params": theirs[:2]}, {"params": theirs[2:], **other}], **kwargs)
    run_steps(opt, topt, ours, theirs, np.float64, 5)
    assert opt.state_dict()["param_groups"][1]["params"] == [2]


@pytest.mark.parametrize("name, kwargs", [CASES[3], CASES[7], CASES[13]])
def test_state_dict_resume_and_pytorch_state_dict(name, kwargs):
    ours, theirs = make_params(np.float64)
    opt, topt = getattr(optim, name)(ours, **kwargs), getattr(torch.optim, name)(theirs, **kwargs)
    run_steps(opt, topt, ours, theirs, np.float64, 3)
    # a fresh optimizer, resumed from our state dict, continues exactly like the uninterrupted one
    saved = opt.state_dict()
    clones = [nn.Parameter(p.detach().clone()) for p in ours]
    resumed = getattr(optim, name)(clones, lr=123.0)
    resumed.load_state_dict(saved)
    assert resumed.param_groups[0]["lr"] == kwargs["lr"]
    # ... and so does one resumed from PyTorch's state dict, converted array by array
    tsd = topt.state_dict()
    converted = {"state": {i: {k: interop.tensor(v.numpy()) for k, v in st.items()}
                           for i, st in tsd["state"].items()},
                 "param_groups": copy.deepcopy(tsd["param_groups"])}
    from_torch = [nn.Parameter(p.detach().clone()) for p in ours]
    opt2 = getattr(optim, name)(from_torch, lr=123.0)
    opt2.load_state_dict(converted)
    run_steps(opt, topt, ours, theirs, np.float64, 2, start=3)
    for clone_set, o in [(clones, resumed), (from_torch, opt2)]:
        for step in range(3, 5):
            set_grads(clone_set, step, np.float64)
            o.step()
        assert_same(clone_set, theirs, np.float64)


def test_loaded_state_is_a_cast_copy():
    p = nn.Parameter(interop.ones(3))
    opt = optim.Adam([p], lr=0.1)
    p.grad = interop.ones(3)
    opt.step()
    sd = opt.state_dict()
    sd["state"][0]["exp_avg"] = sd["state"][0]["exp_avg"].double()
    q = nn.Parameter(interop.ones(3))
    opt2 = optim.Adam([q])
    opt2.load_state_dict(sd)
    st = opt2.state[q]
    assert st["exp_avg"].dtype == interop.float32 and st["step"].dtype == interop.float32
    assert st["exp_avg"].data_ptr() != sd["state"][0]["exp_avg"].data_ptr()
    with pytest.raises(ValueError, match="different number of parameter groups"):
        opt2.load_state_dict({"state": {}, "param_groups": []})
    with pytest.raises(ValueError, match="doesn't match the size"):
        optim.Adam([q, nn.Parameter(interop.ones(1))]).load_state_dict(sd)


def test_api_details():
    a, b = nn.Parameter(interop.ones(2)), nn.Parameter(interop.ones(2))
    opt = optim.SGD([a], lr=0.5)
    opt.add_param_group({"params": b, "momentum": 0.9})
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["momentum"] == 0.9
    a.grad, b.grad = interop.ones(2), interop.ones(2)
    opt.zero_grad(set_to_none=False)
    assert a.grad.tolist() == [0.0, 0.0]
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    opt.step()  # no gradients: nothing moves
    assert a.tolist() == [1.0, 1.0]

    def closure():
        opt.zero_grad()
        loss = (a * a).sum()
        loss.backward()
        return loss

    assert float(opt.step(closure)) == 2.0 and a.tolist() == [0.0, 0.0]
    assert repr(opt).startswith("SGD (\nParameter Group 0\n    dampening: 0\n")
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="iterable of Tensors or dicts"):
        optim.SGD(a, lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([a * 2], lr=0.1)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        optim.Adam([a], lr=-1)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1"):
        optim.AdamW([a], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="Nesterov momentum requires"):
        optim.SGD([a], nesterov=True)
    with pytest.raises(TypeError, match="ordered collections"):
        optim.RMSprop({a})


def test_bfloat16_and_float16_parameters():
    for dt in (interop.bfloat16, interop.float16):
        p = nn.Parameter(interop.ones(4, dtype=dt))
        opt = optim.Adam([p], lr=0.25)
        p.grad = interop.ones(4, dtype=dt)
        opt.step()
        assert p.dtype == dt and opt.state[p]["exp_avg"].dtype == dt
        np.testing.assert_allclose(p.detach().float().numpy(), 0.75, rtol=1e-2)


# ---- schedulers --------------------------------------------------------------------------------------------

SCHEDULERS = [
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[2, 5, 5, 9], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("LinearLR", dict(start_factor=0.25, end_factor=1.0, total_iters=4)),
    ("LinearLR", dict(start_factor=1.0, end_factor=0.1, total_iters=6)),
    ("CosineAnnealingLR", dict(T_max=5, eta_min=0.001)),
    ("LambdaLR", dict(lr_lambda=lambda e: 1 / (e + 1))),
]


def _with_scheduler(lib, name, kwargs):
    p1, p2 = lib.nn.Parameter(lib.zeros(1)), lib.nn.Parameter(lib.zeros(1))
    opt = lib.optim.SGD([{"params": [p1]}, {"params": [p2], "lr": 0.02}], lr=0.1, momentum=0.9)
    return opt, getattr(lib.optim.lr_scheduler, name)(opt, **kwargs)


@pytest.mark.parametrize("name, kwargs", SCHEDULERS, ids=[s[0] + str(i) for i, s in enumerate(SCHEDULERS)])
def test_scheduler_matches_pytorch(name, kwargs):
    opt, sched = _with_scheduler(interop, name, kwargs)
    topt, tsched = _with_scheduler(torch, name, kwargs)
    assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-12)
    for epoch in range(14):
        if epoch == 6:  # resume from state dicts, in PyTorch's documented order: scheduler, then optimizer
            opt2, sched2 = _with_scheduler(interop, name, kwargs)
            sched2.load_state_dict(sched.state_dict())
            opt2.load_state_dict(opt.state_dict())
            opt, sched = opt2, sched2
        opt.step()
        sched.step()
        topt.step()
        tsched.step()
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-12), epoch
        assert [g["lr"] for g in opt.param_groups] == sched.get_last_lr()
    assert sched.last_epoch == tsched.last_epoch == 14


@pytest.mark.parametrize("name, kwargs", SCHEDULERS[:4] + SCHEDULERS[5:6])
def test_scheduler_closed_form_epoch(name, kwargs):
    opt, sched = _with_scheduler(interop, name, kwargs)
    topt, tsched = _with_scheduler(torch, name, kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt.step()
        topt.step()
        sched.step(7)
        tsched.step(7)
    assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-12)


def test_scheduler_warns_when_stepped_before_the_optimizer():
    opt, sched = _with_scheduler(interop, "StepLR", dict(step_size=1))
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        sched.step()
    opt, sched = _with_scheduler(interop, "StepLR", dict(step_size=1))
    opt.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched.step()
    assert sched.get_last_lr() == pytest.approx([0.01, 0.002])
    with pytest.raises(TypeError, match="is not an Optimizer"):
        optim.lr_scheduler.StepLR(object(), 1)


@pytest.mark.gpu
@pytest.mark.parametrize("name, kwargs", [CASES[3], CASES[8], CASES[10], CASES[14]])
def test_cuda_updates_match_cpu(name, kwargs):
    cpu, _ = make_params(np.float32)
    gpu = [nn.Parameter(p.detach().to("cuda")) for p in cpu]
    opt_cpu, opt_gpu = getattr(optim, name)(cpu, **kwargs), getattr(optim, name)(gpu, **kwargs)
    for step in range(5):
        set_grads(cpu, step, np.float32)
        for p, g in zip(gpu, grads_at(step, np.float32)):
            p.grad = None if g is None else interop.tensor(g, device="cuda")
        opt_cpu.step()
        opt_gpu.step()
    for a, b in zip(cpu, gpu):
        assert b.is_cuda
        np.testing.assert_allclose(b.detach().cpu().numpy(), a.detach().numpy(), rtol=1e-5, atol=1e-6)
    # a CPU state dict loads onto CUDA parameters (moved) and the two keep stepping alike
    resumed = getattr(optim, name)([nn.Parameter(p.detach().to("cuda")) for p in cpu], **kwargs)
    resumed.load_state_dict(opt_cpu.state_dict())
    assert all(v.is_cuda for st in resumed.state.values() for k, v in st.items() if k != "step")

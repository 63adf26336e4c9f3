"""The GPU-facing parts of the train loop, checked on CPU: device names, gradient
accumulation, no host sync between reads, NaN found at the read cadence, loader workers."""

from __future__ import annotations

import copy
import traceback

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ablations.schema.catalog import load_catalog
from ablations.schema.config import ConfigError, apply, validate
from ablations.schema.device import check_device, resolve_device
from ablations.train import TrialFailed, epoch, loop, train
from ablations.train.runtime import resolve_runtime

pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(train=None, data=None):
    cat = load_catalog()
    cfg = cat.experiment("table2").config_for(cat.protocol("smoke"), "alternating", 0)
    data = {"train_samples": 64, "val_samples": 32, "img_size": 16, **(data or {})}
    return apply(
        cfg, {"data": data, "train": {"batch_size": 16, "epochs": 1, **(train or {})}}, "t"
    )


# --- device names ---------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a CPU-only machine")
def test_cuda_without_cuda_is_one_line_naming_what_is_valid():
    with pytest.raises(ConfigError) as err:
        check_device("cuda")
    msg = str(err.value)
    assert "\n" not in msg and "train.device: 'cuda'" in msg
    assert "torch.cuda.is_available() is False" in msg and "valid here: auto, cpu" in msg
    with pytest.raises(ConfigError, match="valid here: auto, cpu"):
        validate(_cfg({"device": "cuda:1"}), "--device")
    validate(_cfg({"device": "cuda"}), "--device", data=False)  # a dry run may plan elsewhere


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "meta", ""])
def test_unknown_device_name_lists_the_valid_forms(name):
    for available in (True, False):
        with pytest.raises(ConfigError, match="valid forms: auto, cpu, cuda, cuda:N, mps") as e:
            check_device(name, available=available)
        assert "\n" not in str(e.value)


def test_cpu_and_auto_resolve_without_error(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    rt = resolve_runtime(_cfg({"device": "auto"}).train)
    assert rt.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.is_available():  # 'cuda' is this rank's device, as torchrun numbers them
        monkeypatch.setenv("LOCAL_RANK", str(torch.cuda.device_count() - 1))
        assert resolve_device("cuda").index == torch.cuda.device_count() - 1


def test_micro_batch_must_divide_the_per_rank_batch():
    validate(_cfg({"micro_batch": 4}))
    with pytest.raises(ConfigError, match=r"train.micro_batch: 5 does not divide .* 16") as e:
        validate(_cfg({"micro_batch": 5}))
    assert "\n" not in str(e.value)


# --- gradient accumulation -----------------------------------------------------------------


def _one_step(cfg):
    """Parameters and gradients after one train_step of a fixed batch (mixing included)."""
    rt = resolve_runtime(cfg.train)
    parts = loop._build(cfg, rt)
    images, labels = next(iter(parts.loaders.train))
    torch.manual_seed(123)  # the same Mixup/CutMix draw in both runs
    loss = epoch.train_step(parts, images, labels, cfg, 0)
    grads = {n: p.grad.clone() for n, p in parts.model.named_parameters() if p.grad is not None}
    return float(loss), copy.deepcopy(parts.model.state_dict()), grads


def _initial_state(cfg):
    return loop._build(cfg, resolve_runtime(cfg.train)).model.state_dict()


def test_accumulated_step_equals_the_unsplit_step():
    # grad_clip=0: the gradients compared are the raw ones. Clipping to a norm, and AdamW's
    # m / sqrt(v), would hide a constant factor (a missing 1 / len(pieces)).
    data = {"mixup_prob": 1.0, "cutmix_prob": 0.0}  # mixing across micro-batch borders
    whole_loss, whole, whole_g = _one_step(_cfg({"grad_clip": 0.0}, data))
    split_loss, split, split_g = _one_step(_cfg({"grad_clip": 0.0, "micro_batch": 4}, data))
    start = _initial_state(_cfg(data=data))
    assert split_loss == pytest.approx(whole_loss, rel=1e-6)
    assert whole_g.keys() == split_g.keys()
    for name, g in whole_g.items():  # float32 round-off of a different summation order
        torch.testing.assert_close(split_g[name], g, rtol=1e-4, atol=1e-6, msg=name)
    moved = 0
    for name, p in whole.items():
        torch.testing.assert_close(split[name], p, rtol=1e-5, atol=1e-6, msg=name)
        moved += int(not torch.equal(p, start[name]))
    assert moved > 0  # the step did change the weights (a no-op would pass trivially)


# --- no host sync between reads -------------------------------------------------------------

# Reads that are host-side by design, or CPU-only: the optimiser's step counters (PyTorch
# keeps them on the CPU unless capturable/fused), the mixer's and the augmentation's CPU RNG
# draws, the samplers' index lists, and the factorised cell's range check, which
# vil.mlstm.parallel makes on CPU only.
HOST_SIDE = (("torch/optim/", ""), ("ablations/data/", ""), ("torch/utils/data/", ""),
             ("vil/factor_cell.py", "factorisable"))  # fmt: skip
SYNC_OPS = ("aten._local_scalar_dense", "aten.item")
# On CPU these reach the host without a dispatcher op the mode above could see.
HOST_READS = ("cpu", "tolist", "numpy", "item")


class CountSyncs(TorchDispatchMode):
    """Counts device->host reads (scalar reads, copies to the CPU) per train step."""

    def __init__(self) -> None:
        super().__init__()
        self.step, self.counts, self.where = -1, {}, {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = str(func.overloadpacket)
        # a copy to the host: on CPU, a copy of a CPU tensor asked for with device="cpu"
        to_cpu = name == "aten._to_copy" and str(kwargs.get("device", "")) == "cpu"
        if name in SYNC_OPS or to_cpu:
            self.note()
        return func(*args, **kwargs)

    def note(self) -> None:
        """Charge one host read to the current step, unless it is host-side by design."""
        stack = traceback.extract_stack()
        if not any(p in f.filename and f.name.startswith(n) for f in stack for p, n in HOST_SIDE):
            self.counts[self.step] = self.counts.get(self.step, 0) + 1
            self.where.setdefault(self.step, [f"{f.filename}:{f.lineno} {f.name}" for f in stack])

    def patch_host_reads(self, monkeypatch) -> None:
        """Count ``Tensor.cpu/.tolist/.numpy/.item`` calls too (see HOST_READS)."""
        for name in HOST_READS:
            monkeypatch.setattr(torch.Tensor, name, self._counted(getattr(torch.Tensor, name)))

    def _counted(self, real):
        def counted(tensor, *args, **kwargs):
            self.note()
            return real(tensor, *args, **kwargs)

        return counted


@pytest.mark.parametrize("micro_batch", [None, 4])
def test_no_host_sync_between_reads(tmp_path, monkeypatch, micro_batch):
    """Steps 0..7 of one epoch, reads every 3 steps: only the intervals ending in a read
    (after steps 2, 5 and 7, the epoch's end) may read a tensor on the host."""
    counter = CountSyncs()
    real_step = epoch.train_step

    def marked(parts, images, labels, cfg, step):
        counter.step = step  # everything until the next step's start is charged to ``step``
        return real_step(parts, images, labels, cfg, step)

    monkeypatch.setattr(epoch, "train_step", marked)
    cfg = _cfg({"log_every": 3, "micro_batch": micro_batch}, {"train_samples": 128})
    counter.patch_host_reads(monkeypatch)
    with counter:
        train(cfg, tmp_path)
    monkeypatch.undo()
    reads = {2, 5, 7}
    for step in range(8):
        n = counter.counts.get(step, 0)
        if step in reads:
            assert n > 0, f"step {step}: the read at the cadence was not seen"
        else:
            where = counter.where[step][-6:-1] if n else None
            assert n == 0, f"step {step}: {n} host syncs, first at {where}"


@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA device: torch.cuda.set_sync_debug_mode sees CUDA syncs only",
)
@pytest.mark.parametrize(("compile_", "micro_batch"), [("off", None), ("off", 4), ("on", None)])
def test_no_cuda_sync_between_reads(tmp_path, monkeypatch, compile_, micro_batch):
    """The same steps on the GPU, with CUDA itself raising at any synchronising call in an
    interval that does not end in a read (compiled: step 0 compiles and may sync)."""
    reads = {2, 5, 7} | ({0} if compile_ == "on" else set())
    real_step = epoch.train_step

    def strict(parts, images, labels, cfg, step):
        torch.cuda.set_sync_debug_mode("default" if step in reads else "error")
        return real_step(parts, images, labels, cfg, step)

    monkeypatch.setattr(epoch, "train_step", strict)
    over = {"log_every": 3, "micro_batch": micro_batch, "device": "cuda", "compile": compile_}
    cfg = _cfg(over, {"train_samples": 128})
    try:
        record = train(cfg, tmp_path)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert record.state == "COMPLETE" and record.steps_done == 8


def test_non_finite_loss_found_at_the_cadence_names_its_step(tmp_path):
    cfg = _cfg({"log_every": 3, "inject_nan_at_step": 1}, {"train_samples": 128})
    with pytest.raises(TrialFailed, match=r"non-finite loss \(nan\) at step 1$"):
        train(cfg, tmp_path)


# --- loader workers -------------------------------------------------------------------------


def _first_batches(workers: int, n: int = 2):
    cfg = _cfg(data={"num_workers": workers})
    parts = loop._build(cfg, resolve_runtime(cfg.train))
    parts.loaders.set_epoch(0, 1)
    it = iter(parts.loaders.train)
    return parts.loaders.train, [next(it)[0] for _ in range(n)]


def test_workers_are_persistent_prefetch_and_give_the_same_images_for_any_count():
    _, none = _first_batches(0)  # in this process: the same per-sample seeds as in workers
    one, a = _first_batches(1)
    two, b = _first_batches(2)
    assert one.persistent_workers and two.persistent_workers and one.prefetch_factor == 4
    for x, y, z in zip(none, a, b, strict=True):
        assert torch.equal(x, y) and torch.equal(x, z)


def test_an_epoch_has_the_same_batches_after_earlier_epochs_as_in_a_resumed_process():
    # A persistent worker's iterator is reused from epoch to epoch; a resumed run starts a
    # fresh one at its epoch: both must give epoch 1 the same order and augmentation.
    _, fresh = _first_batches(1)  # a new loader, started at epoch 1
    cfg = _cfg(data={"num_workers": 1})
    loaders = loop._build(cfg, resolve_runtime(cfg.train)).loaders
    loaders.set_epoch(0, 0)
    assert len(list(loaders.train)) == 4  # epoch 0, all of it
    loaders.set_epoch(0, 1)
    it = iter(loaders.train)
    for x in fresh:
        assert torch.equal(next(it)[0], x)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a CPU-only machine")
@pytest.mark.parametrize(
    ("device", "says"),
    [("cuda", "valid here: auto, cpu"), ("gpu", "valid forms: auto, cpu, cuda, cuda:N")],
)
def test_cli_device_error_is_one_line_before_any_work(tmp_path, capsys, device, says):
    from ablations.app.cli import EXIT_CONFIG, main

    args = ["sweep", "table2", "--protocol", "smoke", "--results", str(tmp_path)]
    assert main([*args, "--device", device]) == EXIT_CONFIG
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("vil-ablate: error:") and says in err
    assert f"train.device: {device!r}" in err and not list(tmp_path.iterdir())


def test_fast_math_flags_for_cuda_only():
    from ablations.train.runtime import set_fast_math

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.backends.cudnn.benchmark)  # fmt: skip
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        set_fast_math(torch.device("cpu"))
        assert not torch.backends.cuda.matmul.allow_tf32
        set_fast_math(torch.device("cuda", 0))  # only flips global flags: no GPU needed
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert torch.backends.cudnn.benchmark
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.benchmark) = saved  # fmt: skip


def test_checkpoint_from_before_the_new_fields_still_resumes():
    from ablations.schema.config import to_dict
    from ablations.train.checkpoint import config_changes

    new = to_dict(_cfg())
    old = copy.deepcopy(new)
    for key in ("micro_batch", "log_every", "prefetch"):
        del old["train"][key]
    del old["data"]["augment_on"]
    assert config_changes(old, new) == []
    changed = to_dict(_cfg(data={"augment_on": "device"}))
    assert config_changes(old, changed) == ["data.augment_on"]

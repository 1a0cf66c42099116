"""One run on several GPUs (or CPU processes): data parallelism with ``torch.distributed`` under torchrun.

    torchrun --nproc_per_node 2 -m ganbench run --model dcgan --loss wgan-gp --dataset mnist ...

torchrun starts one process per device and describes the group in the environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``); ``init`` joins it with NCCL on
CUDA, else gloo. Every rank builds the same networks from the run's seed and draws the same full
batch of data and latents from the run's generators, then trains on its own contiguous slice of it;
gradients are averaged over the ranks before each optimiser step. With equal slices that average is
the gradient of the full batch, so a run on N processes is the same computation as on one (up to the
order of floating-point sums), and the config, run id and rows mean the same thing; batch norm
becomes ``SyncBatchNorm``, which normalises with the whole batch's statistics. Evaluation
splits the feature extraction (the costly part) by batches over the ranks and gathers the features
back in order (``map_batches``), so every rank computes the same metric values, bit for bit those of
one process; only rank 0 writes the results folder.

Outside a process group every function here is a no-op, so the training loop has one code path.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os

import torch
import torch.distributed as dist

from ganbench.errors import UserError


def launched() -> bool:
    """Started by torchrun (or any launcher that sets WORLD_SIZE) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: torch.device) -> torch.device:
    """Join the process group from the environment; returns this rank's device (cuda:LOCAL_RANK on GPUs)."""
    if not dist.is_available():
        raise UserError("this torch build has no torch.distributed")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device.type == "cuda"
    if cuda:
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
        atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
    return device


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


_LOCAL_STATISTICS = False


def sync_statistics() -> bool:
    """Whether batch norms in training mode normalise by the statistics of the whole batch over
    every rank: under torchrun, except inside ``local_statistics()``."""
    return active() and not _LOCAL_STATISTICS


@contextlib.contextmanager
def local_statistics():
    """Inside: batch norms in training mode normalise by this process's own batch, as one process
    does, for work that every rank repeats on the same data (sampling with batch statistics)."""
    global _LOCAL_STATISTICS
    before, _LOCAL_STATISTICS = _LOCAL_STATISTICS, True
    try:
        yield
    finally:
        _LOCAL_STATISTICS = before


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def shard(x: torch.Tensor | None) -> torch.Tensor | None:
    """This rank's contiguous slice of a batch (along dim 0); the whole batch outside a group."""
    if x is None or not active():
        return x
    n, w = len(x), world_size()
    if n % w:
        raise UserError(f"a batch of {n} does not split evenly over {w} processes; use a batch_size divisible by {w}")
    k = n // w
    return x[rank() * k:(rank() + 1) * k]


def average_gradients(module: torch.nn.Module) -> None:
    """Replace each gradient by its mean over the ranks (one all-reduce for the whole module)."""
    if not active():
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def mean_over_ranks(row: dict, keys: tuple[str, ...]) -> dict:
    """``row`` with ``keys`` averaged over the ranks, so every rank logs (and judges divergence on) the same numbers."""
    if not active():
        return row
    t = torch.tensor([float(row[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    t /= world_size()
    return {**row, **dict(zip(keys, t.tolist()))}


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank (a picklable value)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


_rank_local = False  # inside a computation already split by rank


def splitting() -> bool:
    """Whether extraction is split over the ranks here: in a group, outside ``rank_local``."""
    return active() and not _rank_local


@contextlib.contextmanager
def rank_local():
    """Within: ``map_batches`` (and the extractors built on it) work on this rank's rows alone, for
    code that has already given each rank its own share (``features.stats.feature_statistics``)."""
    global _rank_local
    before, _rank_local = _rank_local, True
    try:
        yield
    finally:
        _rank_local = before


class _SumOverRanks(torch.autograd.Function):
    """all_reduce(SUM) that autograd can differentiate (twice, for the gradient penalty): the
    gradient with respect to each rank's input is the sum of every rank's output gradient."""

    @staticmethod
    def forward(ctx, x):
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        return _SumOverRanks.apply(grad)


def batch_moments(x: torch.Tensor, dims: list[int]) -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor]:
    """Mean and biased variance over ``dims`` of the whole batch over every rank, differentiable
    through the all-reduce; the number of values each is over; and x minus the mean. The slices are
    equal (``shard``)."""
    n = x.numel() / math.prod(x.shape[d] for d in range(x.dim()) if d not in dims) * world_size()
    mean = _SumOverRanks.apply(x.sum(dims)) / n
    shape = [1 if d in dims else x.shape[d] for d in range(x.dim())]
    centred = x - mean.view(shape)
    return mean, _SumOverRanks.apply((centred * centred).sum(dims)) / n, n, centred


class SyncBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics are those of the whole batch over every rank.

    The mean and (biased) variance are all-reduced sums over the ranks' slices, differentiable
    through the reduction, so forward, backward and the running statistics are the ones a single
    process computes on the full batch (up to the order of floating-point sums). In eval mode, or
    outside a process group, it is plain batch norm; its parameters and buffers are batch norm's,
    so checkpoints and generator files load into either. Unlike ``torch.nn.SyncBatchNorm`` it
    runs on CPU processes (gloo) as well as GPUs.
    """

    replaces = torch.nn.BatchNorm2d  # the batch norm it stands for, whose input checks it keeps

    def _check_input_dim(self, x: torch.Tensor) -> None:
        self.replaces._check_input_dim(self, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and sync_statistics()):
            return super().forward(x)
        self._check_input_dim(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked)
        dims = [0] + list(range(2, x.dim()))
        shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x  # statistics in float32 under autocast
        mean, var, n, centred = batch_moments(xf, dims)
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), factor)
                unbiased = var.detach() * (n / max(n - 1, 1.0))
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)
        return y.to(x.dtype)


_PLAIN_BATCH_NORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)


def sync_batch_norm(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` with every batch norm replaced by a ``SyncBatchNorm`` sharing its parameters and
    buffers (children in place). A subclass of batch norm (a plug-in's conditional batch norm, say)
    has behaviour of its own that cannot be kept: it is a one-line error."""
    if type(module) in _PLAIN_BATCH_NORMS:
        sync = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                             module.track_running_stats, device="meta")
        sync.replaces = type(module)
        sync.weight, sync.bias = module.weight, module.bias
        for buffer in ("running_mean", "running_var", "num_batches_tracked"):
            setattr(sync, buffer, getattr(module, buffer))
        return sync.train(module.training)
    if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and not isinstance(module, SyncBatchNorm):
        raise UserError(f"{type(module).__name__} is a batch norm of its own, which cannot be synchronised over "
                        "processes under torchrun; run it in one process")
    for name, child in module.named_children():
        setattr(module, name, sync_batch_norm(child))
    return module


def map_batches(fn, x: torch.Tensor, batch: int):
    """``fn`` over ``x`` in batches of ``batch`` rows, the batches dealt out over the ranks; every rank
    gets every batch's output, concatenated in order.

    ``fn(chunk)`` returns a tensor, or a tuple or dict of tensors, with one row per input row. The
    batches are the ones one process would use, so each output row is computed from the same
    inputs by the same kernels and the result equals one process's bit for bit. Outside a group
    this is ``fn`` over the batches, one after another.
    """
    chunks = x.split(batch)
    if not chunks:
        return fn(x)
    if not splitting():
        return _concat([fn(c) for c in chunks])
    with rank_local():  # fn may itself be a splitting extractor: here it must stay on this rank's rows
        mine = {i: _to_cpu(fn(chunks[i])) for i in range(rank(), len(chunks), world_size())}
    every: list = [None] * world_size()
    dist.all_gather_object(every, mine)
    merged = {i: out for part in every for i, out in part.items()}
    return _concat([merged[i] for i in range(len(chunks))])


def _to_cpu(out):
    if isinstance(out, dict):
        return {k: v.cpu() for k, v in out.items()}
    if isinstance(out, tuple):
        return tuple(v.cpu() for v in out)
    return out.cpu()


def _concat(outs: list):
    first = outs[0]
    if isinstance(first, dict):
        return {k: torch.cat([o[k] for o in outs]) for k in first}
    if isinstance(first, tuple):
        return tuple(torch.cat(parts) for parts in zip(*outs))
    return torch.cat(outs)


def main_then_share(fn):
    """``fn()`` run by rank 0 alone, its (picklable) result sent to every rank: for work that must
    happen once, such as training a classifier. Outside a group: ``fn()``."""
    if not active():
        return fn()
    result, error = None, None
    if is_main():
        try:
            result = fn()
        except Exception as e:  # the other ranks must not wait forever for a result
            error = e
    failure = None if error is None else (isinstance(error, UserError), str(error))
    result, failure = broadcast_object((result, failure))
    if error is not None:
        raise error
    if failure is not None:  # the same kind of error as process 0's: a mistake (exit 2) or a failure
        raise (UserError if failure[0] else RuntimeError)(f"on process 0: {failure[1]}")
    return result

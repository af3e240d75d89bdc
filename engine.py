"""One epoch of training and one pass of evaluation: the loops of main.py,
which predict.py (runs.score_folds) and bench.py reuse. They run in one process
or under torchrun (DistributedDataParallel); the process-group helpers below
are no-ops in a single process.
"""
import time

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

import utils
from resnet import batch_logits
from utils import CLASSES

# --------------------------------------------------------------------------
# Distributed helpers: all no-ops in a single process.

def is_dist():
    return dist.is_available() and dist.is_initialized()


def gather_in_order(t, n):
    """Gather equal-sized per-rank tensors from a DistributedSampler(shuffle=False)
    and return the first n rows in dataset order: rank r holds the padded
    indices r, r + world, ..., so interleaving restores the order and the
    sampler's padding duplicates fall at the end."""
    if not is_dist():
        return t[:n]
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.stack(parts, dim=1).reshape(-1, *t.shape[1:])[:n]


def broadcast_buffers(model):
    """Give every process rank 0's buffers: BN running statistics are per
    process (DDP only syncs them at the next forward), and the model that
    gets evaluated everywhere should be the one rank 0 saves."""
    for buf in model.buffers():
        dist.broadcast(buf, 0)


def all_reduce_sum(values, device):
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if is_dist():
        dist.all_reduce(t)
    return t.tolist()


# --------------------------------------------------------------------------
# One epoch of training, one pass of evaluation.

def train_one_epoch(model, loader, criterion, optimizer, device, precision, epoch,
                    show_progress=True):
    """-> dict(loss, samples, seconds, samples_per_s) over all processes.
    Stops with SystemExit on a non-finite loss (all ranks together)."""
    model.train()
    total, count = 0.0, 0
    t0 = time.perf_counter()
    bar = tqdm(loader, desc=f'epoch {epoch} train', leave=False, disable=not show_progress,
               dynamic_ncols=True)
    for step, (x, y) in enumerate(bar):
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        with utils.autocast(device, precision):
            logits = model(x)
        loss = criterion(logits.float(), y)
        finite = torch.isfinite(loss.detach())
        if is_dist():
            finite = finite.to(torch.int32)
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        if not bool(finite):
            raise SystemExit(f'error: non-finite training loss ({loss.item()}) at epoch '
                             f'{epoch}, step {step}; lower --lr, or check the cache for '
                             f'NaN/Inf (re-run preprocess.py)')
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(x)
        count += len(x)
        bar.set_postfix(loss=f'{total / count:.4f}')
    total, count = all_reduce_sum([total, count], device)
    seconds = time.perf_counter() - t0
    return {'loss': total / max(count, 1), 'samples': int(count), 'seconds': seconds,
            'samples_per_s': count / seconds}


def evaluate(model, loader, criterion, device, precision, show_progress=False):
    """-> dict(loss, f1, f1_at_05, auc, scores (n, 9), labels (n, 9), thresholds)
    over the loader's whole dataset, gathered from all processes in dataset order.

    f1 is macro F1 at each class's F1-optimal threshold on this same set. That
    is how predict.py will use the model (thresholds tuned on the validation
    fold), so selecting the epoch by it selects for the deployed decision rule;
    F1 at 0.5 (also returned) would mostly reward calibration of rare classes.
    """
    model.eval()
    logits_all, labels_all = [], []
    with torch.inference_mode():
        for x, y in tqdm(loader, desc='validate', leave=False, disable=not show_progress,
                         dynamic_ncols=True):
            logits_all.append(batch_logits(model, x, device, precision))
            labels_all.append(y.to(device))
        n = len(loader.dataset)
        logits = torch.cat(logits_all) if logits_all else torch.empty(0, len(CLASSES),
                                                                      device=device)
        labels = torch.cat(labels_all) if labels_all else torch.empty_like(logits)
        logits, labels = gather_in_order(logits, n), gather_in_order(labels, n)
        loss = float(criterion(logits, labels)) if n else float('nan')
        scores = torch.sigmoid(logits).cpu().double().numpy()
    labels = labels.cpu().numpy().astype(np.int8)
    thresholds = utils.f1_optimal_thresholds(labels, scores)
    tuned = utils.compute_metrics(labels, scores, thresholds, n_boot=0)
    at05 = utils.compute_metrics(labels, scores, np.full(len(CLASSES), 0.5), n_boot=0)
    return {'loss': loss, 'f1': float(tuned.loc['macro', 'f1']),
            'f1_at_05': float(at05.loc['macro', 'f1']),
            'auc': float(tuned.loc['macro', 'auc']),
            'scores': scores, 'labels': labels, 'thresholds': thresholds}


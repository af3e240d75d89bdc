"""Train the study's 1D ResNet-34 on the 12-lead ECGs of a preprocessed database.

Needs `python preprocess.py --data-dir DIR` first (labels.csv + cache/). Trains on
8 folds, validates on 1 each epoch and keeps the epoch with the best validation
macro F1; the test fold is left for predict.py.

    # the study's run exactly (CPU; add --use-gpu or --device cuda for one GPU);
    # make paper runs it (pipeline.RECIPES['study'])
    python main.py --data-dir data/CPSC --leads all --epochs 40 --batch-size 32 --lr 1e-4 \
        --seed 42 --sched none --precision fp32
    # exact --resume on CUDA too
    python main.py --data-dir data/CPSC --deterministic --resume
    # a single lead, one cross-validation fold, all ten folds
    python main.py --data-dir data/CPSC --leads II
    python main.py --data-dir data/CPSC --test-fold 3
    python main.py --data-dir data/CPSC --cv
    # continue an interrupted run (weights, optimizer, scheduler, epoch, RNG)
    python main.py --data-dir data/CPSC --resume
    # several GPUs on one machine (the batch size is per GPU)
    torchrun --standalone --nproc_per_node=4 main.py --data-dir data/CPSC --batch-size 8
    # several machines: run on each, with its --node_rank
    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=4 --master_addr=10.0.0.1 \\
        --master_port=29500 main.py --data-dir data/CPSC --batch-size 8
    # CPU processes under torchrun use gloo (what the tests do)
    torchrun --standalone --nproc_per_node=2 main.py --data-dir data/SYNTH --device cpu
    # score a saved checkpoint on the validation fold only
    python main.py --data-dir data/CPSC --evaluate

Writes models/<run>/ (run = utils.run_name, e.g. CPSC-all-s42-f10): best.pt and
last.pt (self-describing checkpoints, see runs.load_checkpoint; `provenance`
is the data's, from preprocess.py's folds.json: {"synthetic": true} for
synthetic.py's records, whatever the folder's name), args.json and
log.jsonl (one JSON line per epoch: epoch, train_loss, val_loss, val_f1, val_auc,
lr, seconds, samples_per_s).
"""
import argparse
import json
import math
import os
import random
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

import records
import utils
from dataset import ECGDataset, LengthBucketSampler, collate
from engine import broadcast_buffers, evaluate, is_dist, train_one_epoch
from folds import FOLDS_JSON, check_manifest, current_manifest, public
from preprocess import data_provenance
from records import parse_leads
from resnet import ARCHS, build_model
from runs import load_checkpoint, read_checkpoint
from utils import CLASSES


def get_args_parser(add_help=True):
    parser = argparse.ArgumentParser(
        description=__doc__, add_help=add_help,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    utils.add_common_args(parser)
    parser.add_argument('--arch', default='resnet34', choices=sorted(ARCHS),
                        help="network (default: resnet34, the study's)")
    parser.add_argument('--epochs', default=40, type=int, metavar='N',
                        help="training epochs (default: 40, the study's)")
    parser.add_argument('-b', '--batch-size', default=32, type=int, metavar='N',
                        help="records per batch and process (default: 32, the study's)")
    parser.add_argument('--lr', '--learning-rate', default=1e-4, type=float, metavar='LR',
                        help="Adam learning rate (default: 1e-4, the study's)")
    parser.add_argument('--weight-decay', default=0.0, type=float, metavar='W',
                        help="Adam weight decay (default: 0, the study's)")
    # The study created StepLR(10, 0.1) but never stepped it, i.e. trained at a
    # constant rate. Cosine decay to 0 over the run is the usual fix and needs
    # no tuning of step points; 'none' reproduces the study.
    parser.add_argument('--sched', default='cosine', choices=['cosine', 'step', 'none'],
                        help='LR schedule, stepped once per epoch: cosine to 0, '
                             'step = x0.1 every 10 epochs, none = constant (default: cosine)')
    parser.add_argument('--window', default=records.WINDOW, type=int, metavar='SAMPLES',
                        help='input length at 500 Hz: the last SAMPLES of each record, '
                             "zero-padded in front (default: 15000 = 30 s, the study's)")
    parser.add_argument('--augment', action=argparse.BooleanOptionalAction, default=True,
                        help="random amplitude scaling and shift of training records, "
                             "as in the study (default: on)")
    parser.add_argument('--head-dropout', default=0.0, type=float, metavar='P',
                        help="dropout before the final layer; the study defines 0.2 "
                             "but never applies it (default: 0.0)")
    parser.add_argument('--length-aware', action='store_true',
                        help='train on batches padded only to their longest record '
                             '(length-bucketed) instead of the full window: faster '
                             'when most records are shorter than the window. The head '
                             'then pools over the record only (resnet.ResNet1d '
                             'mask_padding, stored in the checkpoint), so the full-window '
                             'validation, predict.py and SHAP see what training saw '
                             '(default: off)')
    parser.add_argument('--precision', default='auto', choices=['auto', 'bf16', 'fp32'],
                        help='auto = bf16 autocast on CUDA and on CPUs with native '
                             'bf16, fp32 elsewhere (default: auto)')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the model (default: off)')
    parser.add_argument('-j', '--workers', default=None, type=int, metavar='N',
                        help='data loader processes (default: min(4, cores) on CUDA; 0 '
                             'on the CPU, where a batch loads in-process in ~10 ms and '
                             'worker processes would take cores from the model)')
    parser.add_argument('--resume', action='store_true',
                        help='continue from models/<run>/last.pt with the model, '
                             'optimizer, scheduler, epoch, best metric and RNG states')
    parser.add_argument('--force', action='store_true',
                        help='retrain from scratch over an existing run (default: refuse)')
    parser.add_argument('--cv', action='store_true',
                        help='10-fold cross-validation: --test-fold 1..10 in turn, '
                             'skipping folds already trained to --epochs')
    parser.add_argument('--evaluate', action='store_true',
                        help='only score models/<run>/best.pt on the validation fold')
    parser.add_argument('--deterministic', action='store_true',
                        help='torch.use_deterministic_algorithms + deterministic cuDNN: the '
                             'same numbers on every run and an exact --resume on CUDA too, '
                             'at some speed (default: off; the CPU is deterministic anyway)')
    return parser


# --------------------------------------------------------------------------
# Distributed set-up: a no-op in a single process (engine.py has the rest).

def ddp_setup(device_arg):
    """-> (rank, world_size, local_rank); initialises the process group when
    launched by torchrun (RANK/WORLD_SIZE set)."""
    if int(os.environ.get('RANK', '-1')) == -1:
        return 0, 1, 0
    rank, world = int(os.environ['RANK']), int(os.environ['WORLD_SIZE'])
    local = int(os.environ.get('LOCAL_RANK', '0'))
    use_cuda = device_arg != 'cpu' and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local)
    dist.init_process_group('nccl' if use_cuda else 'gloo')
    return rank, world, local


# --------------------------------------------------------------------------
# Data.

def make_loaders(args, folds, rank, world, device):
    pin = device.type == 'cuda'
    workers = args.workers
    if workers is None:
        workers = min(4, os.cpu_count() or 1) if device.type == 'cuda' else 0
    # collate: the default collate, or pad_collate for length-aware batches.
    common = {'num_workers': workers, 'pin_memory': pin, 'collate_fn': collate,
              'persistent_workers': workers > 0}
    train_ds = ECGDataset(args.data_dir, folds['train'], leads=args.leads, window=args.window,
                          augment=args.augment, seed=args.seed, trim=args.length_aware)
    if args.length_aware:
        train_sampler = LengthBucketSampler(train_ds.lengths, args.batch_size, shuffle=True,
                                            seed=args.seed, num_replicas=world, rank=rank)
        train_loader = DataLoader(train_ds, batch_sampler=train_sampler, **common)
    else:
        # DistributedSampler also in a single process: its order depends only
        # on (seed, epoch), so a resumed run sees the batches it would have seen.
        train_sampler = DistributedSampler(train_ds, num_replicas=world, rank=rank,
                                           shuffle=True, seed=args.seed, drop_last=False)
        train_loader = DataLoader(train_ds, batch_size=args.batch_size,
                                  sampler=train_sampler, drop_last=False, **common)
    # Validation always uses the full window: it is what predict.py and the
    # SHAP analysis feed the model, so model selection sees the same inputs.
    val_ds = ECGDataset(args.data_dir, folds['val'], leads=args.leads, window=args.window,
                        augment=False, seed=args.seed, trim=False)
    report_left_out(train_ds, val_ds, rank)
    val_sampler = DistributedSampler(val_ds, num_replicas=world, rank=rank, shuffle=False)
    val_loader = DataLoader(val_ds, batch_size=args.batch_size, sampler=val_sampler, **common)
    return train_ds, train_sampler, train_loader, val_ds, val_loader


def report_left_out(train_ds, val_ds, rank):
    """Say how many records of a mixed database lack the leads trained on."""
    left = train_ds.left_out + val_ds.left_out
    if rank == 0 and left:
        print(f"leads {','.join(train_ds.leads)}: left out {left} records of the training and "
              f'validation folds that neither hold nor can derive them (labels.csv leads); '
              f'{len(train_ds)} train, {len(val_ds)} validation records', flush=True)
    if not len(train_ds) or not len(val_ds):
        raise SystemExit(f"error: no records of the training or validation folds hold leads "
                         f"{','.join(train_ds.leads)}; see the leads column of labels.csv")


# --------------------------------------------------------------------------
# Checkpoints.

def rng_state():
    """All RNG states as tensors/ints, so a weights_only load (runs.read_checkpoint) reads them."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state = {'torch': torch.get_rng_state(),
             'numpy_keys': torch.from_numpy(keys.astype(np.int64)),
             'numpy_pos': int(pos), 'numpy_has_gauss': int(has_gauss),
             'numpy_cached': float(cached), 'python': list(random.getstate()[1])}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    torch.set_rng_state(state['torch'])
    np.random.set_state(('MT19937', state['numpy_keys'].numpy().astype(np.uint32),
                         state['numpy_pos'], state['numpy_has_gauss'],
                         state['numpy_cached']))
    random.setstate((3, tuple(state['python']), None))
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def is_complete(path, epochs):
    """True when `path` (a last.pt) holds a run trained to `epochs` epochs."""
    if not path.is_file():
        return False
    try:
        ckpt = read_checkpoint(path)
    except SystemExit:  # a corrupt file is not complete
        return False
    return int(ckpt.get('epoch', 0)) >= epochs


def make_scheduler(optimizer, args):
    if args.sched == 'cosine':
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(args.epochs, 1))
    if args.sched == 'step':
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.1)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


def is_improvement(f1, best_f1, best_epoch):
    """Does this epoch's validation F1 beat the best so far? The first
    epoch always saves best.pt. A NaN F1 (a validation fold without
    positives, or a diverging epoch) never counts as a best and never blocks
    a later finite one: `x > nan` is always False, so a plain comparison
    would keep a NaN first epoch as the best of the whole run."""
    if best_epoch == 0:
        return True
    if not math.isfinite(f1):
        return False
    return not math.isfinite(best_f1) or f1 > best_f1


# --------------------------------------------------------------------------

def refuse_existing(args, out, name, is_main):
    """A run already in models/<run>/: skip it under --cv when it is complete
    (-> True), else refuse without --resume or --force."""
    last = out / 'last.pt'
    if args.evaluate or not last.exists() or args.resume or args.force:
        return False
    if args.cv and is_complete(last, args.epochs):
        if is_main:
            print(f'{name}: already trained to {args.epochs} epochs, skipping '
                  f'(--force retrains)', flush=True)
        return True
    raise SystemExit(f'error: {out} already holds a run; pass --resume to continue it '
                     f'or --force to retrain from scratch')


def evaluate_only(args, name, leads, best_path, val_loader, device, precision, is_main):
    """--evaluate: score best.pt on the validation fold -> result dict."""
    model, _ = load_checkpoint(best_path, leads=leads, map_location=device)
    val = evaluate(model, val_loader, nn.BCEWithLogitsLoss(), device, precision)
    result = {'run': name, 'val_loss': val['loss'], 'val_f1': val['f1'],
              'val_f1_at_05': val['f1_at_05'], 'val_auc': val['auc'],
              'n_val': len(val['labels'])}
    if is_main:
        print(json.dumps(result), flush=True)
    return result


def resume(args, model, optimizer, scheduler, last_path, is_main):
    """--resume: model, optimizer, scheduler and RNG states of last.pt, after
    the fold check -> (first epoch to train, best F1, its epoch)."""
    if not args.resume:
        return 1, -math.inf, 0
    if not last_path.exists():
        if is_main:
            print(f'no {last_path} to resume from; starting from scratch', flush=True)
        return 1, -math.inf, 0
    # on the CPU: RNG states must be CPU tensors; load_state_dict moves the rest
    ckpt = read_checkpoint(last_path, map_location='cpu')
    check_manifest(ckpt.get('fold_manifest'), args.data_dir, last_path, resume=True)
    model.load_state_dict(ckpt['model'])
    optimizer.load_state_dict(ckpt['optimizer'])
    scheduler.load_state_dict(ckpt['scheduler'])
    start_epoch = int(ckpt['epoch']) + 1
    best_f1, best_epoch = float(ckpt['best_metric']), int(ckpt.get('best_epoch', 0))
    set_rng_state(ckpt['rng'])
    if is_main:
        print(f'resumed {last_path} at epoch {start_epoch} (best val F1 {best_f1:.4f} '
              f'at epoch {best_epoch})', flush=True)
    return start_epoch, best_f1, best_epoch


def start_log(args, out, name, manifest, start_epoch):
    """args.json, and log.jsonl cut back to the epochs before start_epoch."""
    out.mkdir(parents=True, exist_ok=True)
    utils.atomic_write_json(vars(args) | {'run': name, 'commit': utils.git_commit(),
                                          'fold_manifest': public(manifest)},
                            out / 'args.json')
    log = out / 'log.jsonl'
    # A crash between the log line and the checkpoint leaves lines for
    # epochs that the resumed run repeats: keep only the checkpoint's.
    kept = [line for line in (log.read_text().splitlines() if log.exists() else [])
            if line.strip() and json.loads(line)['epoch'] < start_epoch]
    log.write_text(''.join(line + '\n' for line in kept))


def checkpoint(args, model, optimizer, scheduler, epoch, best, val, run):
    """The self-describing checkpoint of an epoch (see runs.load_checkpoint);
    best = (best F1, its epoch); run: leads, folds, manifest, precision."""
    return {'model': model.state_dict(), 'optimizer': optimizer.state_dict(),
            'scheduler': scheduler.state_dict(), 'epoch': epoch,
            'best_metric': best[0], 'best_epoch': best[1],
            'metric_name': 'val_macro_f1_at_val_optimal_thresholds',
            'val_f1': val['f1'], 'val_auc': val['auc'],
            'args': {k: v for k, v in vars(args).items()}, 'leads': run['leads'],
            'classes': list(CLASSES), 'arch': args.arch, 'window': args.window,
            'mask_padding': bool(args.length_aware),
            'folds': run['folds'], 'fold_manifest': run['manifest'],
            'commit': utils.git_commit(), 'precision': run['precision'], 'rng': rng_state(),
            'provenance': run['provenance']}


def read_provenance(data_dir):
    """The data's provenance as preprocess.py recorded it in folds.json, or,
    for a database preprocessed before it did, as the folder shows it now
    (preprocess.data_provenance: synthetic.py's synthetic.json)."""
    try:
        prov = json.loads((Path(data_dir) / FOLDS_JSON).read_text()).get('provenance')
    except (OSError, ValueError, AttributeError):
        prov = None
    return prov if isinstance(prov, dict) and 'synthetic' in prov else data_provenance(data_dir)


def save_epoch(out, row, ckpt, improved):
    """An epoch's log line (printed, appended to log.jsonl) and checkpoints:
    last.pt, and best.pt when the epoch improved."""
    print(json.dumps(row), flush=True)
    with open(out / 'log.jsonl', 'a') as f:
        f.write(json.dumps(row) + '\n')
    if improved:
        utils.atomic_torch_save(ckpt, out / 'best.pt')
    utils.atomic_torch_save(ckpt, out / 'last.pt')


def train_run(args, rank=0, world=1, local_rank=0):
    """Train (or --evaluate) one run: args.test_fold or the seeded split.
    Returns the best validation F1."""
    is_main = rank == 0
    leads = parse_leads(args.leads)
    name = utils.run_name(args.data_dir, leads, args.seed, args.test_fold)
    out = utils.run_dirs(name, args.root)['models']
    train_f, val_f, test_f = utils.split_data(args.seed, args.test_fold)
    folds = {'train': train_f, 'val': val_f, 'test': test_f}
    device = utils.select_device(args.device, args.use_gpu)
    if device.type == 'cuda' and world > 1:
        device = torch.device('cuda', local_rank)
    precision = utils.select_precision(device, args.precision)
    last_path, best_path = out / 'last.pt', out / 'best.pt'
    if refuse_existing(args, out, name, is_main):
        return None

    utils.seed_everything(args.seed)
    if args.deterministic:
        utils.set_deterministic(True)
    manifest = current_manifest(args.data_dir)
    if is_main:
        info = {'run': name, 'commit': utils.git_commit(), 'device': str(device),
                'precision': precision, 'seed': args.seed, 'world_size': world,
                'folds': folds, 'fold_manifest': public(manifest), 'args': vars(args)}
        print(json.dumps(info, default=str), flush=True)

    train_ds, train_sampler, train_loader, _, val_loader = make_loaders(
        args, folds, rank, world, device)
    model = build_model(args.arch, len(leads), len(CLASSES), head_dropout=args.head_dropout,
                        mask_padding=args.length_aware).to(device)
    criterion = nn.BCEWithLogitsLoss()
    if args.evaluate:
        return evaluate_only(args, name, leads, best_path, val_loader, device, precision,
                             is_main)

    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr,
                                 weight_decay=args.weight_decay)
    scheduler = make_scheduler(optimizer, args)
    start_epoch, best_f1, best_epoch = resume(args, model, optimizer, scheduler, last_path,
                                              is_main)
    raw_model = model
    if world > 1:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[local_rank] if device.type == 'cuda' else None)
    if args.compile:
        model = torch.compile(model)
    if is_main:
        start_log(args, out, name, manifest, start_epoch)
    run = {'leads': leads, 'folds': folds, 'manifest': manifest, 'precision': precision,
           'provenance': read_provenance(args.data_dir)}

    for epoch in range(start_epoch, args.epochs + 1):
        train_sampler.set_epoch(epoch)
        train_ds.set_epoch(epoch)
        lr = optimizer.param_groups[0]['lr']
        tr = train_one_epoch(model, train_loader, criterion, optimizer, device, precision,
                             epoch, show_progress=is_main)
        if world > 1:
            broadcast_buffers(raw_model)
        val = evaluate(raw_model, val_loader, criterion, device, precision)
        scheduler.step()
        improved = is_improvement(val['f1'], best_f1, best_epoch)
        if improved:
            best_f1, best_epoch = val['f1'], epoch
        row = {'epoch': epoch, 'train_loss': tr['loss'], 'val_loss': val['loss'],
               'val_f1': val['f1'], 'val_f1_at_05': val['f1_at_05'], 'val_auc': val['auc'],
               'lr': lr, 'seconds': round(tr['seconds'], 3),
               'samples_per_s': round(tr['samples_per_s'], 2)}
        if is_main:
            save_epoch(out, row, checkpoint(args, raw_model, optimizer, scheduler, epoch,
                                            (best_f1, best_epoch), val, run), improved)
        if is_dist():
            dist.barrier()
    if is_main:
        print(f'{name}: best val macro F1 {best_f1:.4f} at epoch {best_epoch}; '
              f'checkpoint {best_path}', flush=True)
    return best_f1


def main(argv=None):
    args = get_args_parser().parse_args(argv)
    if args.cv and args.test_fold is not None:
        raise SystemExit('error: --cv runs every fold; drop --test-fold')
    rank, world, local_rank = ddp_setup(args.device)
    try:
        if args.cv:
            results = {}
            for k in range(1, utils.NFOLDS + 1):
                args.test_fold = k
                results[k] = train_run(args, rank, world, local_rank)
            args.test_fold = None
            return results
        return train_run(args, rank, world, local_rank)
    finally:
        if is_dist():
            dist.destroy_process_group()


if __name__ == '__main__':
    main()

"""Feeding the cache built by preprocess.py to PyTorch.

    from dataset import ECGDataset, split_data
    train_folds, val_folds, test_folds = split_data(seed=42)
    ds = ECGDataset('data/CPSC', train_folds, leads='all', augment=True)
    x, y = ds[0]          # x: float32 (12, 15000) mV, front zero-padded; y: (9,)
    loader = DataLoader(ds, batch_size=32, shuffle=True, collate_fn=collate)

Records are read by records/ (read_record, prepare: any lead set, any
rate), never here. The cache (preprocess.py) stores each record's last 15,000
samples at 500 Hz as int16 microvolts in one memory-mapped array, twelve
columns in records.LEADS order (a lead a record lacks and cannot derive is
zeros there); labels.csv says which leads each record really has, and
ECGDataset keeps only the records that hold or can derive the leads asked
for (left_out counts the others). A training step never parses a file;
padding happens here, at load time, as in the study.
"""
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from records import LEADS, WINDOW, parse_leads, to_mV

# The cache and labels are read by records/cache.py (no torch there); re-exported
# here for the callers that import them with the Dataset.
from records.cache import load_cache, load_index, load_labels, with_leads  # noqa: F401
from utils import CLASSES, split_data  # noqa: F401 (split_data is re-exported)

# The study's augmentation (dataset.transform): each of scaling and shift is
# applied when np.random.randn() > 0.5, i.e. with probability 1 - Phi(0.5).
AUG_PROB = 0.3085
AUG_SCALE_SIGMA = 0.1   # amplitude factor per lead ~ N(1, 0.1)
AUG_SHIFT_UV = 20       # baseline shift per lead, uniform integer in [-20, 20] µV

# Length-aware batches are padded to a multiple of this (friendlier shapes for
# the convolutions and for cudnn's per-shape autotuning).
PAD_MULTIPLE = 64


# --------------------------------------------------------------------------
# PyTorch side.

class ECGDataset(Dataset):
    """Records of the given folds from the cache.

    ds[i] -> (x float32 (nleads, window) mV, front zero-padded; y float32 (9,)).
    Records that cannot give every lead of `leads` are left out (counted in
    left_out): a lead-I model trains on lead-I recordings too, a 12-lead one
    on 8-lead exports, never on zeros standing in for a missing lead.
    With trim=True x holds only the record's real samples (nleads, lengths[i]);
    batch such items with LengthBucketSampler + pad_collate.

    augment=True applies the study's augmentation to the real samples: with
    probability AUG_PROB each, one amplitude factor per lead ~ N(1, 0.1), and
    one baseline shift per lead of -20..20 µV. Its random numbers come from
    (seed, epoch, index), so a run is reproducible with any number of
    DataLoader workers; call set_epoch(e) before each epoch (the epoch lives
    in shared memory, so persistent workers see it too).
    The memmap is opened lazily in each process: workers fork cleanly.
    """

    def __init__(self, data_dir, folds, leads='all', window=WINDOW, augment=False,
                 seed=42, trim=False):
        self.data_dir = Path(data_dir)
        self.leads = parse_leads(leads)
        self.lead_idx = np.array([LEADS.index(lead) for lead in self.leads])
        self._all_leads = list(self.leads) == list(LEADS)
        self.window, self.augment, self.seed, self.trim = int(window), augment, seed, trim
        labels = load_labels(data_dir)
        labels = labels[labels['fold'].isin([int(f) for f in folds])]
        labels, self.left_out = with_leads(labels, self.leads)
        index = load_index(data_dir).set_index('patient_id')
        missing = labels.loc[~labels['patient_id'].isin(index.index), 'patient_id']
        if len(missing):
            raise SystemExit(f'error: {len(missing)} records of labels.csv (e.g. '
                             f'{missing.iloc[0]}) are not in {self.data_dir}/cache; rerun '
                             f'python preprocess.py --data-dir {data_dir}')
        self.patient_ids = labels['patient_id'].tolist()
        self.labels = labels[CLASSES].to_numpy(dtype=np.float32)
        rows = index.loc[self.patient_ids]
        self.ends = (rows['offset'] + rows['length']).to_numpy(dtype=np.int64)
        self.lengths = np.minimum(rows['length'].to_numpy(dtype=np.int64), self.window)
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._signals = None

    def __len__(self):
        return len(self.patient_ids)

    def __getstate__(self):
        # A pickled dataset (spawned workers) reopens the memmap, never copies it.
        state = self.__dict__.copy()
        state['_signals'] = None
        return state

    def set_epoch(self, epoch):
        self._epoch.fill_(int(epoch))

    def _augment(self, x, index):
        """x (nleads, n) float32 mV, in place."""
        rng = np.random.default_rng([self.seed, int(self._epoch), index])
        # Draw for all 12 leads, then select: a lead gets the same factor
        # whichever lead subset is trained.
        do_scale, do_shift = rng.random(2) < AUG_PROB
        scale = rng.normal(1.0, AUG_SCALE_SIGMA, len(LEADS))[self.lead_idx]
        shift = rng.integers(-AUG_SHIFT_UV, AUG_SHIFT_UV + 1, len(LEADS))[self.lead_idx]
        if do_scale:
            x *= scale[:, None].astype(np.float32)
        if do_shift:
            x += (shift[:, None] / 1000.0).astype(np.float32)
        return x

    def _open(self):
        if self._signals is None:
            self._signals = np.load(self.data_dir / 'cache' / 'signals.npy',
                                    mmap_mode='r', allow_pickle=False)
        return self._signals

    def _fill(self, out, index):
        """Write record `index` into out (nleads, width): real samples in the
        tail, zeros in front; returns out."""
        signals = self._open()
        n, end = int(self.lengths[index]), int(self.ends[index])
        width = out.shape[-1]
        out[:, :width - n] = 0
        real = out[:, width - n:]
        rows = signals[end - n:end].T  # (12, n) strided view of the memmap
        # All twelve leads in order: no fancy-index copy of the record.
        to_mV(rows if self._all_leads else rows[self.lead_idx], out=real)
        if self.augment:
            self._augment(real, index)
        return out

    def __getitem__(self, index):
        width = int(self.lengths[index]) if self.trim else self.window
        x = np.empty((len(self.lead_idx), width), dtype=np.float32)
        return torch.from_numpy(self._fill(x, index)), torch.from_numpy(self.labels[index])


def padded_width(longest, multiple=PAD_MULTIPLE):
    return -(-int(longest) // multiple) * multiple


def collate(batch):
    """The DataLoader collate_fn for ECGDataset, full window or trim=True:
    torch's default collate, or pad_collate when the lengths differ. (A
    batch built in one tensor by a __getitems__ was measured against this and
    gave no gain that matters: docs/performance.md, loader_designs.)"""
    if len({x.shape for x, _ in batch}) > 1:
        return pad_collate(batch)
    return torch.utils.data.default_collate(batch)


def pad_collate(batch, multiple=PAD_MULTIPLE):
    """[(x (nleads, n_i), y)] -> (x (B, nleads, L), y (B, 9)): front zero-padded
    to the longest record, L rounded up to a multiple of PAD_MULTIPLE."""
    length = padded_width(max(x.shape[-1] for x, _ in batch), multiple)
    out = torch.zeros((len(batch), batch[0][0].shape[0], length), dtype=batch[0][0].dtype)
    for i, (x, _) in enumerate(batch):
        out[i, :, length - x.shape[-1]:] = x
    return out, torch.stack([y for _, y in batch])


class LengthBucketSampler(Sampler):
    """Batch sampler grouping records of similar length, so length-aware
    training (ECGDataset(trim=True) + pad_collate) pads little.

    Each epoch (seeded by seed and set_epoch): shuffle, sort by length inside
    pools of 100 batches (randomness between epochs, similar lengths inside a
    batch), cut into batches of at most batch_size, shuffle the batch order.
    The number of batches is a multiple of num_replicas and rank r takes every
    num_replicas-th batch: the ranks partition the data (no record repeated or
    dropped) and all take the same number of steps, as DDP requires.
    """

    def __init__(self, lengths, batch_size, shuffle=True, seed=42, num_replicas=1, rank=0,
                 pool_batches=100):
        if not 0 <= rank < num_replicas:
            raise ValueError(f'rank {rank} is not in 0..{num_replicas - 1}')
        self.lengths = np.asarray(lengths)
        if len(self.lengths) < num_replicas:
            raise ValueError(f'{len(self.lengths)} records cannot feed {num_replicas} replicas')
        self.batch_size, self.shuffle, self.seed = int(batch_size), shuffle, seed
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.pool = self.batch_size * pool_batches
        n = len(self.lengths)
        nbatches = max(-(-n // self.batch_size), 1)
        self.nbatches = -(-nbatches // self.num_replicas) * self.num_replicas
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def __len__(self):
        return self.nbatches // self.num_replicas

    def __iter__(self):
        n = len(self.lengths)
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch])
            order = rng.permutation(n)
            for start in range(0, n, self.pool):
                pool = order[start:start + self.pool]
                order[start:start + self.pool] = pool[np.argsort(self.lengths[pool], kind='stable')]
        else:
            order = np.argsort(self.lengths, kind='stable')
        batches = np.array_split(order, self.nbatches)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        for batch in batches[self.rank::self.num_replicas]:
            yield batch.tolist()

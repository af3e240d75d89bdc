"""Speed, `python bench.py --only loader`: dataset.ECGDataset on the
memory-mapped cache against the study's loader (wfdb.rdsamp + pad per item)."""
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from benches.common import synthetic_cache
from benches.study_dataset import StudyDataset
from dataset import ECGDataset, collate, load_labels


def run(args):
    """dataset.py: loader samples/s vs parsing WFDB per access (target >= 20x)."""
    n_records, n_study = (64, 32) if args.quick else (256, 96)

    def samples_per_s(loader, n):
        t0, seen = time.perf_counter(), 0
        for x, _ in loader:
            seen += len(x)
            if seen >= n:
                break
        return seen / (time.perf_counter() - t0)

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / 'SYNTH'
        synthetic_cache(data, n_records, 2)
        folds = list(range(1, 11))
        ours = ECGDataset(data, folds, augment=True)
        study = StudyDataset(data, load_labels(data), augment=True)
        rates = {}
        # One intra-op thread, as in DataLoader workers: on 2 busy cores two
        # OpenMP threads make default_collate's torch.stack ~15x slower.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        for name, ds, n, fn in (('ours', ours, n_records, collate),
                                ('study', study, n_study, None)):
            loader = DataLoader(ds, batch_size=32, shuffle=True, num_workers=0, collate_fn=fn)
            samples_per_s(loader, 32)  # warm-up: page cache, first-batch costs
            rates[name] = max(samples_per_s(loader, n) for _ in range(3))
        torch.set_num_threads(threads)
        loader = DataLoader(ours, batch_size=32, shuffle=True, num_workers=2,
                            persistent_workers=True, collate_fn=collate)
        samples_per_s(loader, 32)
        rates['ours_2_workers'] = max(samples_per_s(loader, n_records) for _ in range(3))
    ratio = rates['ours'] / rates['study']
    print(f"loader, batch 32, in-process: cache memmap {rates['ours']:.0f} samples/s, "
          f"the study's rdsamp per item {rates['study']:.0f} samples/s (x{ratio:.1f}); "
          f"2 workers: {rates['ours_2_workers']:.0f} samples/s")
    return {'loader_samples_per_s': rates['ours'], 'study_samples_per_s': rates['study'],
            'speedup': ratio, 'loader_2_workers_samples_per_s': rates['ours_2_workers']}

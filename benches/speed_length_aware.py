"""Speed, `python bench.py --only length_aware`: main.py --length-aware
against the full window on the same records and seed: training samples/s,
interleaved steps side by side, and each run's AUC / F1 to show nothing is
lost for the speed."""
import time

import torch

import utils
from benches.small_runs import HEAD, row, small_runs
from dataset import ECGDataset, LengthBucketSampler, collate
from resnet import build_model


def run(args):
    """main.py --length-aware vs the full window on the same records, seed and
    settings (small_runs): training samples/s (best epoch of each) and the
    validation and test macro AUC / F1 of each run's best checkpoint
    (predict.py, thresholds tuned on validation)."""
    runs = small_runs(args)
    full, aware = runs['cosine'], runs['aware']
    print(runs['setting'] + ':')
    print(HEAD)
    print(row('full window', full))
    print(row('--length-aware', aware))
    step = interleaved_steps(runs['data_dir'], args)
    print(f"training steps side by side on the same {step['records']} training records "
          f"(best of {step['rounds']} interleaved rounds): full window {step['full_s']:.1f} s, "
          f"length-aware {step['aware_s']:.1f} s (batches padded to {step['sample_ratio']:.2f}x "
          f"fewer samples): speed-up x{step['speedup']:.2f}")
    keys = ('samples_per_s', 'val_auc', 'val_f1', 'test_auc', 'test_f1')
    return {'full': {k: full[k] for k in keys}, 'aware': {k: aware[k] for k in keys}, **step}


def interleaved_steps(data_dir, args, window=3000, batch=16):
    """Wall time of training steps over the same records: full-window
    batches (the study's pooling) and length-bucketed ones (the masked
    model), alternated round by round and each the best of its rounds, so a
    burst of load on the shared machine does not favour one (the runs' own
    samples/s are sequential and differ by 3x under such load)."""
    n_batches, rounds = (1, 1) if args.quick else (4, 2)
    train_f = utils.split_data(42)[0]
    sets = {'full': ECGDataset(data_dir, train_f, window=window, augment=True),
            'aware': ECGDataset(data_dir, train_f, window=window, augment=True, trim=True)}
    batches = list(LengthBucketSampler(sets['aware'].lengths, batch, seed=0))[:n_batches]
    torch.manual_seed(0)
    models = {'full': build_model('resnet18', 12),
              'aware': build_model('resnet18', 12, mask_padding=True)}
    opts = {m: torch.optim.Adam(models[m].parameters(), lr=1e-3) for m in models}
    criterion = torch.nn.BCEWithLogitsLoss()
    best = {m: float('inf') for m in models}
    for r in range(rounds + 1):  # round 0 warms up
        for mode in ('full', 'aware'):
            t0 = time.perf_counter()
            for idx in batches:
                x, y = collate([sets[mode][i] for i in idx])
                loss = criterion(models[mode](x), y)
                opts[mode].zero_grad()
                loss.backward()
                opts[mode].step()
            if r:
                best[mode] = min(best[mode], time.perf_counter() - t0)
    lengths = sets['aware'].lengths
    padded = sum(len(i) * -(-int(lengths[i].max()) // 64) * 64 for i in batches)
    return {'records': sum(map(len, batches)), 'rounds': rounds, 'full_s': best['full'],
            'aware_s': best['aware'], 'speedup': best['full'] / best['aware'],
            'sample_ratio': sum(map(len, batches)) * window / padded}

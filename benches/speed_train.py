"""Speed, `python bench.py --only train`: main.py's training step against the
study's fp32 step on its loader, the FLOP use against a measured matmul peak,
inference latency, and length-aware batches against the full window."""
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from torch.utils.flop_counter import FlopCounterMode

import engine
import utils
from benches.common import synthetic_cache, timeit
from benches.study_dataset import StudyDataset
from dataset import ECGDataset, LengthBucketSampler, collate, load_labels, padded_width
from records import FS, WINDOW
from resnet import build_model, use_fast_dropout


def _fresh_model(arch):
    """The bench's model, seeded, with main.py's optimizer."""
    torch.manual_seed(0)
    model = build_model(arch, 12)
    return model, torch.optim.Adam(model.parameters(), lr=1e-4)


def _study_step(model, optimizer, loader, criterion):
    """The study's training step (plain fp32, no autocast) over loader -> seconds."""
    t0 = time.perf_counter()
    for x, y in loader:
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - t0


def _train_steps(data, arch, window, batch, rounds, n_batches, precision):
    """(a) + (d): main.py's train_one_epoch on the cache loader (full window,
    then length-aware batches of the same records) vs the plain fp32 step on
    the study's loader. The three are interleaved round by round and each
    keeps its best step, so a burst of load on the shared machine does not
    favour one of them; round 0 is warm-up (allocations, oneDNN plans).
    'stock' is main.py's step with nn.Dropout's mask (resnet.Dropout's reason
    to exist); the study's step has it too, as the study's model.
    -> (best samples/s of ours, stock, study, aware; the datasets)."""
    device, criterion, folds = torch.device('cpu'), nn.BCEWithLogitsLoss(), list(range(1, 11))
    ours_ds = ECGDataset(data, folds, window=window, augment=True)
    study_ds = StudyDataset(data, load_labels(data), window=window)
    trim_ds = ECGDataset(data, folds, window=window, augment=True, trim=True)
    trim_batches = list(LengthBucketSampler(trim_ds.lengths, batch, shuffle=True, seed=0))
    model, opt = _fresh_model(arch)
    best = {'ours': 0.0, 'stock': 0.0, 'study': 0.0, 'aware': 0.0}
    for r in range(rounds + 1):
        idx = list(range((r % n_batches) * batch, (r % n_batches + 1) * batch))
        ours_loader = DataLoader(Subset(ours_ds, idx), batch_size=batch, collate_fn=collate)
        loaders = {
            'ours': ours_loader, 'stock': ours_loader,
            'aware': DataLoader(Subset(trim_ds, trim_batches[r % len(trim_batches)]),
                                batch_size=batch, collate_fn=collate)}
        for name, loader in loaders.items():
            use_fast_dropout(model, name != 'stock')
            rate = engine.train_one_epoch(model, loader, criterion, opt, device, precision,
                                          1, show_progress=False)['samples_per_s']
            best[name] = max(best[name], rate) if r else 0.0
        use_fast_dropout(model, False)
        rate = batch / _study_step(model, opt, DataLoader(Subset(study_ds, idx),
                                                          batch_size=batch), criterion)
        best['study'] = max(best['study'], rate) if r else 0.0
    return best, ours_ds, trim_ds, trim_batches


def _flop_use(model, window, precision, samples_per_s, quick):
    """(b) FLOP use: counted FLOPs of one fwd+bwd per sample vs a big matmul -> dict."""
    with FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 12, window)).sum().backward()
    gflop = counter.get_total_flops() / 1e9
    size = 512 if quick else 2048
    a, b = torch.randn(size, size), torch.randn(size, size)
    peak_fp32 = 2 * size ** 3 / timeit(lambda: a @ b, 3) / 1e9
    small = a[:256, :256].bfloat16()
    peak_bf16 = 2 * 256 ** 3 / timeit(lambda: small @ small, 2) / 1e9
    if precision == 'bf16' and size > 256:
        a16, b16 = a.bfloat16(), b.bfloat16()
        peak_bf16 = 2 * size ** 3 / timeit(lambda: a16 @ b16, 3) / 1e9
    peak = peak_bf16 if precision == 'bf16' else peak_fp32
    achieved = gflop * samples_per_s
    print(f'(b) {gflop:.1f} GFLOP per sample (fwd+bwd); achieved {achieved:.1f} GFLOP/s '
          f'= {100 * achieved / peak:.0f}% of the {precision} matmul peak {peak:.1f} '
          f'GFLOP/s (fp32 {peak_fp32:.1f}, bf16 {peak_bf16:.2f}'
          f"{'' if utils.cpu_supports_bf16() else ', emulated: no native bf16 here'})")
    return dict(gflop_per_sample=gflop, achieved_gflops=achieved,
                matmul_peak_fp32_gflops=peak_fp32, matmul_peak_bf16_gflops=peak_bf16,
                flop_efficiency=achieved / peak)


def _inference_ms(model, x1, infer_batch, precision):
    """(c) inference latency, as predict.py runs it -> dict (ms per record)."""
    device = torch.device('cpu')
    model.eval()

    def infer(x):
        with torch.inference_mode(), utils.autocast(device, precision):
            model(x)
    ms1 = 1000 * timeit(lambda: infer(x1), 3)
    xb = x1.repeat(infer_batch, 1, 1)
    msb = 1000 * timeit(lambda: infer(xb), 2) / infer_batch
    print(f'(c) inference: {ms1:.0f} ms/record at batch 1, {msb:.0f} ms/record at '
          f'batch {infer_batch}')
    return {'infer_ms_batch1': ms1, f'infer_ms_per_record_batch{infer_batch}': msb}


def _cpsc_sample_ratio():
    """(d) input samples per record on a CPSC-sized set (6877 records; 82% ~
    12.5 s, 18% ~ 25 s, 6-60 s, as synthetic.py and CPSC2018): the full window
    over length-aware batches of 32."""
    rng = np.random.default_rng(0)
    secs = np.where(rng.random(6877) < 0.82, 12.5 * np.exp(0.28 * rng.standard_normal(6877)),
                    25.0 * np.exp(0.45 * rng.standard_normal(6877)))
    lengths = np.minimum(np.clip(secs, 6, 60) * FS, WINDOW).astype(int)
    sampler = LengthBucketSampler(lengths, 32, shuffle=True, seed=0)
    padded = sum(len(idx) * padded_width(lengths[idx].max()) for idx in sampler)
    return len(lengths) * WINDOW / padded


def run(args):
    """main.py: training step samples/s vs plain fp32 + WFDB parsing (>= 2x);
    GFLOP/s vs measured matmul peak; inference ms/record; length-aware mode.

    Every timing is the best of a few single steps, which filters the noise of
    a shared machine. Both paths train the same model, the study's with
    nn.Dropout's mask, so on a CPU without native bf16 (fp32 either way) the
    ratio in (a) is the loader's share of a step and resnet.Dropout's (timed
    on its own as 'stock'); the length-aware ratio in (d) is the one that
    pays there.
    """
    # 15000 samples x 12 leads, batch 4: one ResNet-34 step is ~290 GFLOP,
    # seconds on 2 CPU cores, so each path gets 3 timed steps (+1 warm-up).
    arch, window, batch, rounds, infer_batch = (
        ('resnet18', 2000, 2, 1, 4) if args.quick else ('resnet34', WINDOW, 4, 3, 32))
    n_batches = 3
    precision = utils.select_precision(torch.device('cpu'), 'auto')
    out = {'device': 'cpu', 'precision': precision, 'arch': arch, 'window': window,
           'batch': batch, 'threads': torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / 'SYNTH'
        synthetic_cache(data, batch * n_batches, 1, '--workers', '1')
        best, ours_ds, trim_ds, trim_batches = _train_steps(data, arch, window, batch, rounds,
                                                            n_batches, precision)
        ours, stock, study, aware = best['ours'], best['stock'], best['study'], best['aware']
        out.update(train_samples_per_s=ours, study_samples_per_s=study,
                   train_speedup=ours / study, stock_dropout_samples_per_s=stock,
                   fast_dropout_speedup=ours / stock)
        print(f'(a) {arch} training step, batch {batch}, window {window}: main.py '
              f'(cache loader, {precision}) {ours:.2f} samples/s; plain fp32 + wfdb.rdsamp '
              f'per item {study:.2f} samples/s: x{ours / study:.2f} (main.py with '
              f"nn.Dropout's mask instead of resnet.Dropout's: {stock:.2f} samples/s, "
              f'x{ours / stock:.2f})')
        model, _ = _fresh_model(arch)
        out.update(_flop_use(model, window, precision, ours, args.quick))
        out.update(_inference_ms(model, ours_ds[0][0][None], infer_batch, precision))
        # (d) length-aware batches: the CPSC-like ratio, then a measured step
        # on this set's records.
        sample_ratio = _cpsc_sample_ratio()
        mean_len = np.mean([padded_width(trim_ds.lengths[i].max())
                            for i in map(np.array, trim_batches)])
        out.update(length_aware_sample_ratio_cpsc=sample_ratio,
                   length_aware_samples_per_s=aware, length_aware_speedup=aware / ours)
        print(f'(d) length-aware: a CPSC-like set pads to {sample_ratio:.2f}x fewer input '
              f'samples than the {WINDOW}-sample window (batch 32); measured here on '
              f'{len(trim_ds)} synthetic records (batches padded to {mean_len:.0f} samples '
              f'on average): {aware:.2f} samples/s vs {ours:.2f} full-window '
              f'(x{aware / ours:.2f})')
    return out

"""Benchmarks: `make bench` (or `python bench.py [--only NAME] [--quick]`).

Every figure is a ratio of two things measured side by side in this same run,
because the machines are shared and noisy: absolute seconds are printed for
context only. Each section returns its headline numbers; the summary at the
end prints them as one JSON object. The figures measured so far, one table
per machine with its date and commit: docs/performance.md.
"""
import argparse
import json
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parent.parent / 'shared' / 'data'  # the real records, if any


# --------------------------------------------------------------------------
# Timing, measuring and table helpers, shared by the sections.

def timeit(fn, repeat=3):
    """Best-of-`repeat` wall time of fn() in seconds (best-of filters noise)."""
    best = float('inf')
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def best_cpu(fn, repeat=1):
    """Best-of-`repeat` CPU seconds of this process in fn() -> (seconds, last
    result): other jobs on a shared machine do not count against it."""
    best = float('inf')
    for _ in range(repeat):
        t0 = time.process_time()
        result = fn()
        best = min(best, time.process_time() - t0)
    return best, result


def run_measured(argv, threads=1):
    """Run a script in a fresh interpreter -> (seconds, peak resident MiB, output).
    argv[0] is a script next to bench.py, or '-c' and the code to run;
    OMP_NUM_THREADS=threads (None: inherited)."""
    import os
    import subprocess
    import sys
    # VmHWM, not getrusage: ru_maxrss would include the bench's own memory,
    # which the child inherits at fork (it is kept across exec). The script
    # and its sibling imports come from bench.py's folder, whatever the cwd.
    peak = ('print("MAXRSS_KB", [l.split()[1] for l in open("/proc/self/status")'
            ' if l.startswith("VmHWM")][0])')
    if argv[0] == '-c':
        code = argv[1] + '\n' + peak
    else:
        here = os.path.dirname(os.path.abspath(__file__))
        argv = [os.path.join(here, argv[0]), *argv[1:]]
        code = ('import runpy, sys\n'
                f'sys.path.insert(0, {here!r})\n'
                f'sys.argv = {argv!r}\n'
                'try:\n    runpy.run_path(sys.argv[0], run_name="__main__")\n'
                'finally:\n    ' + peak)
    t0 = time.perf_counter()
    env = None if threads is None else {**os.environ, 'OMP_NUM_THREADS': str(threads)}
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if out.returncode:
        raise SystemExit(f'error: {argv} failed:\n{out.stdout}\n{out.stderr}')
    kb = int(out.stdout.rsplit('MAXRSS_KB', 1)[1].split()[0])
    return seconds, kb / 1024, out.stdout


def md_row(*cells):
    """One row of a Markdown table."""
    return '| ' + ' | '.join(str(c) for c in cells) + ' |'


def md_head(*columns, right=0):
    """A Markdown table's header and rule; the last `right` columns right-aligned."""
    return md_row(*columns) + '\n' + md_row(*['---'] * (len(columns) - right),
                                             *['---:'] * right)


def _synthetic_cache(data, n, workers, *preprocess_args):
    """n synthetic records (seed 0) written to data, then preprocess.py's cache, quietly."""
    import contextlib
    import io

    import preprocess
    import synthetic
    synthetic.write_dataset(data, n, seed=0, workers=workers)
    with contextlib.redirect_stdout(io.StringIO()):
        preprocess.main(['--data-dir', str(data), *preprocess_args])


def _random_checkpoint(root, arch, window):
    """A seeded random model (the costs timed do not depend on the weights)
    saved as a run under root, loaded as predict.py loads one -> (path, info)."""
    import torch

    import predict
    import utils
    from resnet import build_model
    torch.manual_seed(0)
    path = Path(root) / 'models' / 'BENCH-all-s42-f10' / 'best.pt'
    utils.atomic_torch_save({'model': build_model(arch, 12).state_dict(), 'arch': arch,
                             'leads': list(utils.LEADS), 'window': window}, path)
    return path, predict.load_model(path, root)


def study_dataset_class():
    """The study's loader, the baseline of the loader and training benches:
    wfdb.rdsamp on every access, the study's augmentation, the last `window`
    samples zero-padded in front. Built lazily so that `import bench` stays
    free of torch and wfdb."""
    import numpy as np
    import torch
    import wfdb
    from torch.utils.data import Dataset

    from utils import CLASSES, WINDOW

    class StudyDataset(Dataset):
        def __init__(self, data_dir, labels, window=WINDOW, augment=False):
            self.data_dir, self.labels = data_dir, labels
            self.window, self.augment = window, augment

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            row = self.labels.iloc[i]
            sig, _ = wfdb.rdsamp(str(self.data_dir / row['patient_id']))
            if self.augment:
                if np.random.randn() > 0.5:
                    sig = sig * np.random.normal(1.0, 0.1, (1, sig.shape[1]))
                if np.random.randn() > 0.5:
                    sig = sig + np.random.choice(range(-20, 20), sig.shape[1]) / 1000
            sig = sig[-self.window:]
            result = np.zeros((self.window, 12))
            result[-len(sig):, :] = sig
            y = row[CLASSES].to_numpy(dtype=np.float32)
            return torch.from_numpy(result.T).float(), torch.from_numpy(y)

    return StudyDataset


def bench_synthetic(args):
    """synthetic.py: records/s per core (workers=1), generating and writing
    CPSC2018-like records (mean ~16 s), against the 50 records/s target."""
    import tempfile

    import synthetic
    n = 10 if args.quick else 100
    synthetic.make_record(0, 0)  # imports and caches out of the timing
    t0 = time.perf_counter()
    for i in range(n):
        synthetic.make_record(0, i)
    gen = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        synthetic.write_dataset(out, n, seed=0, workers=1, progress=False)
        full = time.perf_counter() - t0
    res = {'records': n, 'make_record_per_s': n / gen, 'write_dataset_per_s_per_core': n / full,
           'target_per_s_per_core': 50.0, 'ratio_to_target': n / full / 50.0,
           'write_share': max(0.0, 1 - gen / full)}
    print(f'make_record: {n / gen:.1f} records/s; make + write (.mat/.hea/.atr): '
          f'{n / full:.1f} records/s/core = {n / full / 50:.2f}x the 50/s target '
          f'({100 * res["write_share"]:.0f}% of the time in writing) [{gen:.2f} s, {full:.2f} s]')
    return res


def bench_preprocess(args):
    """preprocess.py: header scan speed, cache build vs rdsamp-per-record."""
    import os
    import tempfile

    import wfdb

    import preprocess
    import synthetic
    from records import LEADS, prepare, quantise, read_record
    n_headers, n_cache, n_wfdb = (700, 100, 50) if args.quick else (7000, 1000, 300)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # 16 synthetic CPSC-like records (6-60 s), copied under new names up to
        # n records: the header text is rewritten, the .mat hard-linked.
        synthetic.write_dataset(tmp / 'templates', 16, seed=0, workers=1)
        templates = sorted((tmp / 'templates').glob('*.hea'))

        def copies(folder, n):
            folder.mkdir()
            for i in range(n):
                src, name = templates[i % len(templates)], f'B{i:05d}'
                text = src.read_text().replace(src.stem, name)
                (folder / f'{name}.hea').write_text(text)
                os.link(src.with_suffix('.mat'), folder / f'{name}.mat')
            return sorted(folder.glob('*.hea'))

        headers = copies(tmp / 'headers', n_headers)
        t_ours = timeit(lambda: preprocess.scan_wfdb(tmp / 'headers', preprocess.Skips(False)), 3)
        t0 = time.perf_counter()
        for h in headers[:n_wfdb]:
            wfdb.rdheader(str(h.with_suffix('')))
        t_rdheader = (time.perf_counter() - t0) / n_wfdb * n_headers
        print(f'header scan, {n_headers} records: {t_ours:.2f} s; wfdb.rdheader per record '
              f'{t_rdheader:.1f} s (x{t_rdheader / t_ours:.0f})')
        out['header_scan_s'] = t_ours
        out['header_scan_speedup_vs_rdheader'] = t_rdheader / t_ours

        # The cache-building read of one record vs the study's wfdb.rdsamp.
        sample = headers[:n_wfdb]
        t_read = timeit(lambda: [quantise(prepare(read_record(h), LEADS).x) for h in sample], 2)
        t_rdsamp = timeit(lambda: [wfdb.rdsamp(str(h.with_suffix(''))) for h in sample], 2)
        print(f'read one record: read_record+prepare {t_read / n_wfdb * 1e3:.2f} ms, '
              f'wfdb.rdsamp {t_rdsamp / n_wfdb * 1e3:.2f} ms (x{t_rdsamp / t_read:.1f})')
        out['record_read_speedup_vs_rdsamp'] = t_rdsamp / t_read
        out['study_reference_pass_s'] = t_rdsamp / n_wfdb * n_headers
        print(f'the study\'s reference.csv pass (rdsamp per record) would take '
              f'{t_rdsamp / n_wfdb * n_headers:.1f} s for {n_headers} records')

        copies(tmp / 'cache_in', n_cache)
        records = preprocess.scan_wfdb(tmp / 'cache_in', preprocess.Skips(False))
        times, cpu = {1: float('inf'), 2: float('inf')}, {}
        for _ in range(2):  # alternate, best of 2: the machine's load drifts
            for workers in (1, 2):
                t0, c0 = time.perf_counter(), sum(os.times()[:4])  # self + reaped workers
                preprocess.build_cache(records, tmp / f'cache{workers}', 'wfdb', 'bench',
                                       workers, preprocess.Skips(False))
                times[workers] = min(times[workers], time.perf_counter() - t0)
                cpu[workers] = sum(os.times()[:4]) - c0
        size = (tmp / 'cache2' / 'signals.npy').stat().st_size / 2**20
        print(f'cache build, {n_cache} records ({size:.0f} MiB): 1 worker {times[1]:.2f} s '
              f'({cpu[1]:.2f} CPU s), 2 workers {times[2]:.2f} s ({cpu[2]:.2f} CPU s): '
              f'x{times[1] / times[2]:.2f}; {n_cache / times[2]:.0f} records/s; load average '
              f'{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores')
        out['cache_build_records_per_s'] = n_cache / times[2]
        out['cache_build_2_workers_speedup'] = times[1] / times[2]
    return out


def bench_loader(args):
    """dataset.py: loader samples/s vs parsing WFDB per access (target >= 20x)."""
    import tempfile

    import torch
    from torch.utils.data import DataLoader

    from dataset import ECGDataset, collate, load_labels
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
        _synthetic_cache(data, n_records, 2)
        folds = list(range(1, 11))
        ours = ECGDataset(data, folds, augment=True)
        study = study_dataset_class()(data, load_labels(data), augment=True)
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


def _fresh_model(arch):
    """The bench's model, seeded, with main.py's optimizer."""
    import torch

    from resnet import build_model
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
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, Subset

    import main as train
    from dataset import ECGDataset, LengthBucketSampler, collate, load_labels
    from resnet import use_fast_dropout
    device, criterion, folds = torch.device('cpu'), nn.BCEWithLogitsLoss(), list(range(1, 11))
    ours_ds = ECGDataset(data, folds, window=window, augment=True)
    study_ds = study_dataset_class()(data, load_labels(data), window=window)
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
            rate = train.train_one_epoch(model, loader, criterion, opt, device, precision,
                                         1, show_progress=False)['samples_per_s']
            best[name] = max(best[name], rate) if r else 0.0
        use_fast_dropout(model, False)
        rate = batch / _study_step(model, opt, DataLoader(Subset(study_ds, idx),
                                                          batch_size=batch), criterion)
        best['study'] = max(best['study'], rate) if r else 0.0
    return best, ours_ds, trim_ds, trim_batches


def _flop_use(model, window, precision, samples_per_s, quick):
    """(b) FLOP use: counted FLOPs of one fwd+bwd per sample vs a big matmul -> dict."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    import utils
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
    import torch

    import utils
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
    import numpy as np

    import utils
    from dataset import LengthBucketSampler, padded_width
    rng = np.random.default_rng(0)
    secs = np.where(rng.random(6877) < 0.82, 12.5 * np.exp(0.28 * rng.standard_normal(6877)),
                    25.0 * np.exp(0.45 * rng.standard_normal(6877)))
    lengths = np.minimum(np.clip(secs, 6, 60) * utils.FS, utils.WINDOW).astype(int)
    sampler = LengthBucketSampler(lengths, 32, shuffle=True, seed=0)
    padded = sum(len(idx) * padded_width(lengths[idx].max()) for idx in sampler)
    return len(lengths) * utils.WINDOW / padded


def bench_train(args):
    """main.py: training step samples/s vs plain fp32 + WFDB parsing (>= 2x);
    GFLOP/s vs measured matmul peak; inference ms/record; length-aware mode.

    Every timing is the best of a few single steps, which filters the noise of
    a shared machine. Both paths train the same model, the study's with
    nn.Dropout's mask, so on a CPU without native bf16 (fp32 either way) the
    ratio in (a) is the loader's share of a step and resnet.Dropout's (timed
    on its own as 'stock'); the length-aware ratio in (d) is the one that
    pays there.
    """
    import tempfile

    import numpy as np
    import torch

    import utils
    from dataset import padded_width

    # 15000 samples x 12 leads, batch 4: one ResNet-34 step is ~290 GFLOP,
    # seconds on 2 CPU cores, so each path gets 3 timed steps (+1 warm-up).
    arch, window, batch, rounds, infer_batch = (
        ('resnet18', 2000, 2, 1, 4) if args.quick else ('resnet34', utils.WINDOW, 4, 3, 32))
    n_batches = 3
    precision = utils.select_precision(torch.device('cpu'), 'auto')
    out = {'device': 'cpu', 'precision': precision, 'arch': arch, 'window': window,
           'batch': batch, 'threads': torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / 'SYNTH'
        _synthetic_cache(data, batch * n_batches, 1, '--workers', '1')
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
              f'samples than the {utils.WINDOW}-sample window (batch 32); measured here on '
              f'{len(trim_ds)} synthetic records (batches padded to {mean_len:.0f} samples '
              f'on average): {aware:.2f} samples/s vs {ours:.2f} full-window '
              f'(x{aware / ours:.2f})')
    return out


def _write_holter(folder, name, hours, fs=1000, nleads=12, chunk_s=600):
    """A long 12-lead record in WFDB format 16, written chunk by chunk (one
    ECG-like 10-min block, repeated), so the bench itself stays bounded."""
    import numpy as np

    from utils import LEADS
    n = int(hours * 3600 * fs)
    rng = np.random.default_rng(0)
    t = np.arange(chunk_s * fs) / fs
    beats = np.exp(-((t % 0.8 - 0.3) / 0.012) ** 2)
    block = (beats[:, None] * rng.uniform(0.5, 1.5, nleads) + 0.1 * np.sin(t[:, None])
             + 0.01 * rng.standard_normal((len(t), nleads)))
    block = np.rint(block * 1000).astype('<i2')  # 1000 units per mV
    with open(folder / f'{name}.dat', 'wb') as f:
        for start in range(0, n, len(block)):
            f.write(block[:n - start].tobytes())
    lines = [f'{name} {nleads} {fs} {n}']
    lines += [f'{name}.dat 16 1000/mV 16 0 {int(block[0, j])} 0 0 {LEADS[j]}'
              for j in range(nleads)]
    (folder / f'{name}.hea').write_text('\n'.join(lines + ['# Age: 60', '# Sex: Male',
                                                          '# Dx: 426783006']) + '\n')
    return folder / f'{name}.hea'


def _records_holter(tmp, hours):
    """preprocess.py and predict.py --records on a long record, each in a fresh
    interpreter, and predict.py on a 10-s record (its own floor) -> dict."""
    import torch

    from resnet import build_model
    from utils import CLASSES, LEADS
    (tmp / 'HOLTER').mkdir()
    t0 = time.perf_counter()
    hea = _write_holter(tmp / 'HOLTER', 'H24', hours)
    size = hea.with_suffix('.dat').stat().st_size / 2**30
    print(f'wrote a {hours:g}-h 12-lead 1 kHz record ({size:.2f} GiB) in '
          f'{time.perf_counter() - t0:.1f} s')
    pre_s, pre_mb, _ = run_measured(['preprocess.py', '--data-dir', str(tmp / 'HOLTER'),
                                     '--workers', '1'])
    torch.save({'model': build_model('resnet34', 12).state_dict(), 'leads': LEADS,
                'classes': CLASSES, 'arch': 'resnet34', 'window': 15000}, tmp / 'best.pt')
    pred_s, pred_mb, _ = run_measured(['predict.py', '--model-path', str(tmp / 'best.pt'),
                                       '--device', 'cpu', '--records', str(hea),
                                       '--out', str(tmp / 'p.csv')])
    # predict.py's own floor: the same command on a 10-s record.
    (tmp / 'SHORT').mkdir()
    short = _write_holter(tmp / 'SHORT', 'S10', 10 / 3600, chunk_s=10)
    floor_s, floor_mb, _ = run_measured(['predict.py', '--model-path', str(tmp / 'best.pt'),
                                         '--device', 'cpu', '--records', str(short),
                                         '--out', str(tmp / 'q.csv')])
    return dict(hours=hours, file_gib=size, preprocess_s=pre_s, preprocess_rss_mib=pre_mb,
                predict_s=pred_s, predict_rss_mib=pred_mb, predict_10s_record_s=floor_s,
                predict_10s_record_rss_mib=floor_mb)


def _records_whole_read(half, hours):
    """Before: the whole record read in float64 and resampled, then cut; measured
    on the 30-min record `half` and scaled to `hours` -> (seconds, MiB)."""
    code = ('import wfdb, numpy as np\n'
            'from scipy.signal import resample_poly\n'
            f'sig = wfdb.rdrecord({str(half.with_suffix(""))!r}).p_signal\n'
            'x = resample_poly(sig, 1, 2, axis=0)[-15000:]')
    seconds, mib, _ = run_measured(['-c', code], threads=None)
    return seconds * hours / 0.5, mib * hours / 0.5


def _records_tail_error(half):
    """prepare() (tail only) vs the straightforward whole read on the 30-min
    record: the largest difference in mV (they should be equal)."""
    import numpy as np
    import wfdb
    from scipy.signal import resample_poly

    import records
    from utils import LEADS
    x = records.prepare(records.read_record(half), LEADS).x
    full = resample_poly(wfdb.rdrecord(str(half.with_suffix(''))).p_signal, 1, 2, axis=0)
    return float(np.abs(x - records.to_mV(records.quantise(full[-15000:].T))).max())


def _records_readers(tmp, half):
    """Hand-written readers vs wfdb.rdrecord(sampfrom, sampto), same rows:
    read_record + prepare on 8 CPSC-like .mat records and on the last 30 s of
    the 30-min format-16 record `half` -> dict (ms)."""
    import records
    import synthetic
    from utils import LEADS
    synthetic.write_dataset(tmp / 'MAT', 8, seed=0, workers=1, progress=False)
    mats = sorted((tmp / 'MAT').glob('*.hea'))
    hold = records._signal_reader

    def through_wfdb(hdr):
        return (lambda a, b: records._wfdb_read(hdr, a, b)), None

    def read_all(paths, reader):
        records._signal_reader = reader
        try:
            for p in paths:
                r = records.read_record(p)
                records.prepare(r, LEADS)
        finally:
            records._signal_reader = hold
    n = len(mats)
    t_ours = timeit(lambda: read_all(mats, hold), 3) / n
    t_wfdb = timeit(lambda: read_all(mats, through_wfdb), 3) / n
    t_hol = timeit(lambda: read_all([half], hold), 3)
    t_hol_wfdb = timeit(lambda: read_all([half], through_wfdb), 3)
    print(f'read_record + prepare, 12 leads: PhysioNet .mat (CPSC-like, ~16 s) '
          f'{t_ours * 1e3:.2f} ms with the memory-mapped reader vs {t_wfdb * 1e3:.2f} ms '
          f'through wfdb.rdrecord (x{t_wfdb / t_ours:.1f}); last 30 s of a 30-min '
          f'format-16 record {t_hol * 1e3:.1f} ms vs {t_hol_wfdb * 1e3:.1f} ms '
          f'(x{t_hol_wfdb / t_hol:.1f})')
    return dict(mat_reader_ms=t_ours * 1e3, mat_wfdb_ms=t_wfdb * 1e3,
                mat_reader_speedup=t_wfdb / t_ours, fmt16_reader_ms=t_hol * 1e3,
                fmt16_wfdb_ms=t_hol_wfdb * 1e3, fmt16_reader_speedup=t_hol_wfdb / t_hol)


def bench_records(args):
    """records.py on a 24-h, 12-lead, 1 kHz Holter (format 16, 2 GB): peak
    resident memory and time of preprocess.py and predict.py --records
    (targets: <= 1 GB, a few seconds), against reading it whole as before
    (measured on 30 min, scaled by 48); and the hand-written readers (memory-
    mapped MATLAB v4 .mat and format 16) against wfdb.rdrecord(sampfrom, sampto)."""
    import tempfile
    hours = 0.5 if args.quick else 24.0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out = _records_holter(tmp, hours)
        (tmp / 'HALF').mkdir()
        half = _write_holter(tmp / 'HALF', 'H05', 0.5)
        whole_s, whole_mb = _records_whole_read(half, hours)
        print(f"{hours:g} h record, preprocess.py: {out['preprocess_s']:.1f} s, peak RSS "
              f"{out['preprocess_rss_mib']:.0f} MiB; predict.py --records (ResNet-34, CPU): "
              f"{out['predict_s']:.1f} s, {out['predict_rss_mib']:.0f} MiB (on a 10-s record: "
              f"{out['predict_10s_record_s']:.1f} s, {out['predict_10s_record_rss_mib']:.0f} "
              f'MiB: the difference is what the length costs); reading it whole and '
              f'resampling, as before: ~{whole_s:.0f} s, ~{whole_mb / 1024:.1f} GiB (30 min '
              f'measured, x{hours / 0.5:g})')
        out.update(whole_read_s=whole_s, whole_read_rss_mib=whole_mb)
        err = _records_tail_error(half)
        out['tail_vs_whole_max_abs_mv'] = err
        print(f'prepare (tail only) vs whole-record resampling on 30 min: max |diff| '
              f'{err * 1000:.3f} µV')
        out.update(_records_readers(tmp, half))
    return out


def _qrs_detectors():
    """{label: detector(signal 1-D, fs) -> R-peak samples}: ours and the
    public detectors at their default settings; neurokit2 only when it is
    installed (a bench-only dependency, requirements-bench.txt)."""
    import numpy as np
    from biosppy.signals import ecg
    from biosppy.signals import tools as st
    from wfdb.processing import xqrs_detect

    import QRSDetectorOffline as qrs

    def hamilton(x, fs):
        # biosppy.signals.ecg.ecg's own segmentation: FIR 3-45 Hz, Hamilton,
        # then R peaks corrected to the local maximum (50 ms).
        f, _, _ = st.filter_signal(signal=x, ftype='FIR', band='bandpass',
                                   order=int(0.3 * fs), frequency=[3, 45], sampling_rate=fs)
        r, = ecg.hamilton_segmenter(f, fs)
        r, = ecg.correct_rpeaks(f, r, fs, tol=0.05)
        return np.asarray(r)

    methods = {'ours': qrs.detect, 'biosppy hamilton': hamilton,
               'wfdb XQRS': lambda x, fs: np.asarray(xqrs_detect(x, fs, verbose=False))}
    try:
        import neurokit2 as nk
    except ImportError:
        print('neurokit2 is not installed: its column is skipped '
              '(pip install --no-deps -r requirements-bench.txt)')
        return methods

    def neurokit(x, fs):
        clean = nk.ecg_clean(x, sampling_rate=int(fs))
        _, info = nk.ecg_peaks(clean, sampling_rate=int(fs), method='neurokit')
        return np.asarray(info['ECG_R_Peaks'])

    methods['neurokit2 neurokit'] = neurokit
    return methods


def _qrs_score(records, detector, margin_s=0.0, repeat=1):
    """Pooled Se, +P, F1 (150 ms) and CPU s per hour of signal of
    detector(signal, fs) over [(signal, fs, reference)]; beats within
    margin_s of either end are not scored (a synthetic QRS cut by the end)."""
    import warnings

    import numpy as np

    import QRSDetectorOffline as qrs
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        best, dets = best_cpu(lambda: [np.asarray(detector(x, fs), dtype=np.int64)
                                       for x, fs, _ in records], repeat)
    tp = fn = fp = 0
    for (x, fs, ref), det in zip(records, dets, strict=True):
        m0, n = int(margin_s * fs), len(x)
        m = qrs.match_beats(ref[(ref >= m0) & (ref < n - m0)], det[(det >= m0) & (det < n - m0)],
                            fs)
        tp, fn, fp = tp + m['tp'], fn + m['fn'], fp + m['fp']
    hours = sum(len(x) / fs for x, fs, _ in records) / 3600
    return {'se': tp / max(tp + fn, 1), 'ppv': tp / max(tp + fp, 1),
            'f1': 2 * tp / max(2 * tp + fn + fp, 1), 'fn': fn, 'fp': fp,
            's_per_hour': best / hours}


def _qrs_row(set_name, label, m):
    print(md_row(set_name, label, f"{100 * m['se']:.2f}", f"{100 * m['ppv']:.2f}",
                 f"{100 * m['f1']:.2f}", f"{m['s_per_hour']:.2f}"), flush=True)


def bench_qrs(args):
    """QRS detection: ours against biosppy's Hamilton (+ correct_rpeaks), wfdb
    XQRS and neurokit2's 'neurokit' method (after ecg_clean), same records,
    same run.

    Real sets (when ../shared/data is present), scored like
    `QRSDetectorOffline.py --dataset`: whole records, 150 ms window, beats
    pooled over the set. CPSC2019 shared half (lead 0), CPSC2021 shared half
    (lead 0 as in issue 13, lead 1, and ours with both leads fused), MIT-BIH
    100 (MLII). Synthetic: 40 ten-second 12-lead records (seed 7) at noise
    x1, x2 and x4 (synthetic.py --noise-scale), every detector on lead II,
    and ours fused over the 12 leads (what expert_features.py uses) against
    our best single lead (the lead of highest F1 over the set); beats within
    100 ms of the ends are not scored. Speed: CPU seconds per hour of signal
    (best of 2), and ours on one hour of 500 Hz signal (MIT-BIH 100 resampled
    to 500 Hz, twice over). --quick: 10 synthetic records, x1 and x4.
    """

    import numpy as np
    from scipy.signal import resample_poly

    import QRSDetectorOffline as qrs
    import synthetic
    from utils import LEADS
    methods = _qrs_detectors()
    out = {}
    print(md_head('set', 'detector', 'Se %', '+P %', 'F1 %', 's per hour', right=4))
    if SHARED.is_dir():
        real = {name: qrs.reference_set(SHARED / name)
                for name in ('cpsc2019', 'cpsc2021', 'mitdb')}
        for name, lead in (('cpsc2019', 0), ('cpsc2021', 0), ('cpsc2021', 1), ('mitdb', 0)):
            records = [(x[:, lead], fs, ref) for _, x, fs, ref, _ in real[name]]
            tag = f'{name} lead {real[name][0][4][lead]}'
            for label, fn in methods.items():
                m = _qrs_score(records, fn, repeat=2)
                _qrs_row(tag, label, m)
                out[f"{name}_{lead}_{label.split()[-1].lower()}_f1"] = round(m['f1'], 4)
        m = _qrs_score([(x, fs, ref) for _, x, fs, ref, _ in real['cpsc2021']],
                       lambda x, fs: qrs.detect_multilead(x, fs)[0], repeat=2)
        _qrs_row('cpsc2021 I+II', 'ours, fused', m)
        out['cpsc2021_fused_f1'] = round(m['f1'], 4)
    else:
        print(f'{SHARED} is absent: real records skipped')

    n_rec, noises = (10, (1.0, 4.0)) if args.quick else (40, (1.0, 2.0, 4.0))
    for noise in noises:
        recs = [synthetic.make_record(7, i, duration=10, noise_scale=noise) for i in range(n_rec)]
        sigs = [(r['signal'].astype(np.float64), float(r['fs']), np.asarray(r['beats']))
                for r in recs]
        tag = f'synthetic x{noise:g} lead II'
        for label, fn in methods.items():
            _qrs_row(tag, label, _qrs_score([(x[:, 1], fs, ref) for x, fs, ref in sigs], fn,
                                            margin_s=0.1))
        per_lead = [_qrs_score([(x[:, k], fs, ref) for x, fs, ref in sigs], qrs.detect,
                               margin_s=0.1) for k in range(12)]
        k = int(np.argmax([m['f1'] for m in per_lead]))
        _qrs_row(f'synthetic x{noise:g} {LEADS[k]}', 'ours, best single lead',
                 per_lead[k])
        fused = _qrs_score(sigs, lambda x, fs: qrs.detect_multilead(x, fs)[0], margin_s=0.1)
        _qrs_row(f'synthetic x{noise:g} 12 leads', 'ours, fused', fused)
        out[f'synthetic_x{noise:g}_fused_f1'] = round(fused['f1'], 4)
        out[f'synthetic_x{noise:g}_best_lead_f1'] = round(per_lead[k]['f1'], 4)

    if SHARED.is_dir():
        import wfdb
        rec = wfdb.rdrecord(str(SHARED / 'mitdb' / '100'))
        hour = np.tile(resample_poly(rec.p_signal[:, 0], 25, 18), 2)   # 360 -> 500 Hz, 1 h
        t, _ = best_cpu(lambda: qrs.detect(hour, 500.0), 2)
        print(f'ours on {len(hour) / 500 / 3600:.2f} h of one lead at 500 Hz: {t:.2f} s of CPU '
              f'(target <= 0.5 s per hour)')
        out['ours_s_per_hour_500hz'] = round(t / (len(hour) / 500 / 3600), 3)
    return out


def bench_features(args):
    """expert_features.py vs straightforward per-lead pandas/biosppy (>= 3x).

    The same records (synthetic, CPSC-like durations, cropped to the last 30 s
    and quantised as in the cache) through (a) the study-style path: per lead,
    pandas describe + var, pywt.wavedec per lead and pandas describe +
    entropy per band, biosppy hamilton_segmenter per lead for the rhythm; and
    (b) expert_features.record_features (vectorised over leads, three-lead
    rhythm). Ratios: both single-process; and extract_dataset with 2 worker
    processes (cache to features.csv included) against the single-process
    naive path.
    """
    import os
    import tempfile
    import warnings

    import numpy as np
    import pandas as pd
    import pywt
    from biosppy.signals import ecg

    import expert_features as ef
    import synthetic
    from records import quantise

    n = 10 if args.quick else 40
    records = [quantise(synthetic.make_record(12, i)['signal'])[-15000:] for i in range(n)]
    signals = [r.astype(np.float32) / 1000.0 for r in records]

    def naive(x, fs=500):
        feats = []
        for lead in range(x.shape[1]):
            s = pd.Series(x[:, lead])
            d = s.describe(percentiles=[.05, .25, .5, .75, .95])
            feats += [d['5%'], d['25%'], d['50%'], d['75%'], d['95%'], d['mean'], d['std'],
                      s.var()]
            for c in pywt.wavedec(x[:, lead], 'db10', level=4):
                cs = pd.Series(c)
                dc = cs.describe(percentiles=[.05, .25, .5, .75, .95])
                p = c ** 2 / np.sum(c ** 2)
                feats += [float(-np.sum(p * np.log(p + 1e-300))), dc['5%'], dc['25%'],
                          dc['50%'], dc['75%'], dc['95%'], dc['mean'], dc['std'], cs.var()]
        rr_sets = []
        for lead in range(x.shape[1]):
            r, = ecg.hamilton_segmenter(x[:, lead], fs)
            rr_sets.append(pd.Series(np.diff(r) / fs))
        rr = max(rr_sets, key=len)
        feats += [len(rr) + 1, 60 / rr.mean(), rr.mean(), rr.std(), rr.min(), rr.max(),
                  np.sqrt((rr.diff() ** 2).mean()), (rr.diff().abs() > 0.05).mean()]
        return feats

    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        naive(signals[0])
        ef.record_features(signals[0])
        t_naive = timeit(lambda: [naive(x) for x in signals], 2)
        t_ours = timeit(lambda: [ef.record_features(x) for x in signals], 2)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / 'cache').mkdir()
        lengths = [len(r) for r in records]
        np.save(root / 'cache' / 'signals.npy', np.concatenate(records))
        pd.DataFrame({'patient_id': [f'B{i:04d}' for i in range(n)],
                      'offset': np.r_[0, np.cumsum(lengths)[:-1]], 'length': lengths}
                     ).to_csv(root / 'cache' / 'index.csv', index=False)
        t_pool = timeit(lambda: ef.extract_dataset(root, workers=2, force=True, quiet=True), 2)
    print(f'{n} records x 30 s, 12 leads ({len(ef.feature_names())} features; load average '
          f'{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)')
    print(f'  naive per-lead pandas/pywt/hamilton, 1 process: {t_naive:.2f} s '
          f'({1e3 * t_naive / n:.0f} ms/record)')
    print(f'  expert_features.record_features, 1 process:    {t_ours:.2f} s '
          f'({1e3 * t_ours / n:.0f} ms/record)  x{t_naive / t_ours:.1f}')
    print(f'  extract_dataset, 2 processes (+ CSV):          {t_pool:.2f} s '
          f'({1e3 * t_pool / n:.0f} ms/record)  x{t_naive / t_pool:.1f} vs naive 1 process')
    return {'features_ms_per_record': 1e3 * t_ours / n,
            'naive_ms_per_record': 1e3 * t_naive / n,
            'speedup_single_process': t_naive / t_ours,
            'speedup_two_processes_vs_naive_single': t_naive / t_pool}


def bench_shap(args):
    """shap_values.py: seconds per explained record (target <= 30 s).

    Ours: the default settings (ResNet-34, random init as only the cost matters,
    12 leads x 15,000 samples, 100 background records, --nsamples default,
    shap_values.py's precision, on the GPU where there is one) through
    shap_values.explain_record, the script's own engine, for one class and for
    two (they share each batch's forward pass). Naive: the study's call, all 9 outputs at
    nsamples=200 in fp32, measured at nsamples=4 and extrapolated x50.
    """
    import numpy as np
    import torch

    import shap
    import shap_values
    import utils
    from resnet import build_model

    arch, window, n_bg = ('resnet18', 2500, 4) if args.quick else ('resnet34', utils.WINDOW, 100)
    nsamples = 4 if args.quick else shap_values.get_args_parser().get_default('nsamples')
    naive_ns = 2 if args.quick else 4
    # the GPU where there is one: the figure per record on a GPU comes from here
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    precision = shap_values.shap_precision(device)  # what shap_values.py's --precision auto picks
    torch.manual_seed(0)
    model = build_model(arch, 12).to(device).eval()
    gen = torch.Generator().manual_seed(0)
    background = (0.3 * torch.randn(n_bg, 12, window, generator=gen)).to(device)
    x = (0.3 * torch.randn(1, 12, window, generator=gen)).to(device)

    def explainer(prec):  # the study's call: shap's own GradientExplainer
        wrapper = shap_values.explained_model(model, np.full(9, 0.5), device, prec, chunk=16)
        with torch.no_grad():
            return shap.GradientExplainer(wrapper, background, batch_size=16)

    # ours: shap_values.py's engine (expected_gradients via explain_record), one class
    ours = shap_values.explained_model(model, np.full(9, 0.5), device, precision, chunk=16)
    t0 = time.perf_counter()
    with torch.no_grad():
        ours(background)  # E[f(background)]: once per run
    t_bg = time.perf_counter() - t0
    t_one = timeit(lambda: shap_values.explain_record(ours, x, background, nsamples, rseed=0,
                                                      classes=[0]), repeat=1)
    t_two = timeit(lambda: shap_values.explain_record(ours, x, background, nsamples, rseed=0,
                                                      classes=[0, 1]), repeat=1)
    naive = explainer('fp32')
    t_naive = timeit(lambda: naive.shap_values(x, nsamples=naive_ns, rseed=0), repeat=1)
    t_naive *= 200 / naive_ns
    out = {'arch': arch, 'window': window, 'nsamples': nsamples, 'precision': precision,
           'background_forward_s': round(t_bg, 1),
           's_per_record_1_class': round(t_one, 1), 's_per_record_2_classes': round(t_two, 1),
           'naive_s_per_record_extrapolated': round(t_naive, 1),
           'speedup_1_class': round(t_naive / t_one, 1),
           'speedup_2_classes': round(t_naive / t_two, 1),
           's_per_gradient': round(t_one / nsamples, 3),
           'gradients_ours_vs_naive': f'{nsamples} (x classes) vs {9 * 200}'}
    print(f'{arch}, 12 x {window}, background {n_bg} (one-off forward {t_bg:.1f} s), '
          f'{device.type} {precision}: {t_one:.1f} s per record with 1 predicted class, '
          f'{t_two:.1f} s with 2 (nsamples {nsamples}); naive (9 outputs x 200 samples, '
          f'fp32; measured at {naive_ns} and extrapolated): {t_naive:.0f} s per record; '
          f'ratio {t_naive / t_one:.0f}x (1 class), {t_naive / t_two:.0f}x (2 classes); '
          f'in gradients {9 * 200} vs {nsamples} per class, i.e. {1800 / nsamples:.0f}x and '
          f'{900 / nsamples:.0f}x if the cost per gradient were the same')
    return out


def bench_shap_population(args):
    """shap_population.py: the waterfalls, summaries and beat-aligned
    profiles drawn per explained record, against the SHAP computation they
    follow (the demo's: ResNet-18, 12 x 5,000 samples, --nsamples default, one
    predicted class), measured side by side. Records: synthetic PVC and STD
    records of 10 s with their .atr; values: the input times noise, as cheap
    stand-ins of the right shape (the drawing cost does not depend on them)."""
    import tempfile

    import numpy as np
    import torch

    import shap_population
    import shap_values
    import synthetic
    import utils
    from resnet import build_model

    n_rec, window = (2, 2500) if args.quick else (4, 5000)
    nsamples = 4 if args.quick else shap_values.get_args_parser().get_default('nsamples')
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        records = {}
        for i in range(n_rec):
            cls = ['PVC', 'STD'][i % 2]
            rec = synthetic.make_record(0, i, duration=window / utils.FS, classes=[cls])
            name = synthetic.record_name(i)
            synthetic.write_record(rec, tmp / 'data', name)
            x = rec['signal'].T.astype(np.float32)
            v = (x * rng.normal(0, 1e-2, x.shape)).astype(np.float32)
            records[name] = {'x': x, 'length': window, 'prob': np.full(9, 0.9),
                             'threshold': np.full(9, 0.5),
                             'classes': np.array([utils.CLASSES.index(cls)]),
                             'values': v[None], 'fx': np.array([float(v.sum())])}
        t_fig = timeit(lambda: shap_population.write_population_outputs(
            tmp / 'out', records, utils.LEADS, np.zeros(9), data_dir=tmp / 'data'), 1)
    torch.manual_seed(0)
    model = build_model('resnet18', 12).eval()
    wrapper = shap_values.explained_model(model, np.full(9, 0.5), torch.device('cpu'),
                                          utils.select_precision(torch.device('cpu')))
    bg = 0.3 * torch.randn(8, 12, window)
    x = torch.from_numpy(records[synthetic.record_name(0)]['x'])[None]
    # the computation the figures follow: shap_values.py's engine, one class
    t_shap = timeit(lambda: shap_values.explain_record(wrapper, x, bg, nsamples, 0,
                                                       classes=[0]), 1)
    per = t_fig / n_rec
    print(f'{n_rec} records of 12 x {window}: population figures {t_fig:.1f} s '
          f'({per:.1f} s per record: waterfall, profile share, summary share); SHAP of one '
          f'record and class (resnet18, nsamples {nsamples}) {t_shap:.1f} s; figures / SHAP '
          f'= {per / t_shap:.2f}')
    return {'records': n_rec, 'figures_s': round(t_fig, 2), 'figures_s_per_record': round(per, 2),
            'shap_s_per_record': round(t_shap, 2), 'ratio': round(per / t_shap, 3)}


def bench_metrics(args):
    """utils.compute_metrics: 1,000 bootstrap resamples, vectorised, vs
    sklearn's precision/recall/F1/AUC recomputed per resample."""
    import numpy as np
    from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

    import utils
    n, n_boot, n_naive = (200, 100, 10) if args.quick else (700, 1000, 30)
    rng = np.random.default_rng(0)
    y = rng.random((n, len(utils.CLASSES))) < 0.15
    score = np.clip(y * 0.4 + rng.random(y.shape) * 0.8, 0, 1)
    thresholds = np.full(len(utils.CLASSES), 0.5)
    t_ours = timeit(lambda: utils.compute_metrics(y, score, thresholds, n_boot=n_boot), 3)

    def naive(n_resamples):
        for _ in range(n_resamples):
            i = rng.integers(0, n, n)
            for k in range(y.shape[1]):
                if 0 < y[i, k].sum() < n:
                    roc_auc_score(y[i, k], score[i, k])
                pred = score[i, k] >= thresholds[k]
                for fn in (precision_score, recall_score, f1_score):
                    fn(y[i, k], pred, zero_division=0)
    t_naive = timeit(lambda: naive(n_naive), 1) * n_boot / n_naive
    print(f'{n} records x 9 classes, {n_boot} resamples: compute_metrics {t_ours:.2f} s; '
          f'sklearn per resample and class {t_naive:.0f} s (measured on {n_naive}, '
          f'extrapolated): x{t_naive / t_ours:.0f}')
    return {'records': n, 'resamples': n_boot, 'ours_s': t_ours, 'naive_s': t_naive,
            'speedup': t_naive / t_ours}


_SMALL = {}  # the small training runs shared by the length_aware and deviations sections


def small_runs(args):
    """Three small seeded runs of main.py + predict.py on the same records
    (CPU-sized: ResNet-18, a 3,000-sample (6 s) window, 300 synthetic records
    of 2-6 s, 4 epochs, batch 16, lr 1e-3, fp32): 'cosine' (our schedule, full
    window), 'aware' (the same with --length-aware) and 'constant' (the
    study's constant rate). Returns {mode: dict(samples_per_s, val_auc,
    val_f1, test_auc, test_f1, val/test labels and scores)}; run once per
    bench.py call."""
    if _SMALL:
        return _SMALL
    import contextlib
    import io
    import json as _json
    import tempfile
    from types import SimpleNamespace

    import numpy as np
    import pandas as pd
    import torch

    import main as train
    import predict
    import preprocess
    import synthetic
    import utils
    from resnet import load_checkpoint
    n, epochs = (40, 1) if args.quick else (300, 4)
    rng = np.random.default_rng(0)
    import atexit
    import shutil
    tmp = tempfile.mkdtemp(prefix='bench-small-')
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)  # shared by two sections
    data = Path(tmp) / 'LA'
    for i in range(n):
        rec = synthetic.make_record(0, i, duration=float(rng.uniform(2, 6)))
        synthetic.write_record(rec, data, synthetic.record_name(i))
    with contextlib.redirect_stdout(io.StringIO()):
        preprocess.main(['--data-dir', str(data), '--workers', '1'])
    common = ['--data-dir', str(data), '--arch', 'resnet18', '--window', '3000',
              '--epochs', str(epochs), '--lr', '1e-3', '--batch-size', '16',
              '--device', 'cpu', '--precision', 'fp32', '--workers', '0']
    modes = {'cosine': [], 'aware': ['--length-aware'], 'constant': ['--sched', 'none']}
    _, val_f, test_f = utils.split_data(42)
    for mode, extra in modes.items():
        root = Path(tmp) / mode
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            train.main([*common, '--root', str(root), *extra])
            predict.main(['--data-dir', str(data), '--root', str(root), '--device', 'cpu',
                          '--precision', 'fp32', '--n-boot', '0'])
        run = next((root / 'models').iterdir()).name
        log = [_json.loads(line) for line in
               (root / 'models' / run / 'log.jsonl').read_text().splitlines()]
        best = max(log, key=lambda r: (np.nan_to_num(r['val_f1'], nan=-1), -r['epoch']))
        test = pd.read_csv(root / 'results' / run / 'metrics.csv', index_col=0).loc['macro']
        model, ckpt = load_checkpoint(root / 'models' / run / 'best.pt', leads='all')
        ns = SimpleNamespace(data_dir=data, batch_size=32, workers=0)
        with torch.inference_mode():
            _, vy, vs = predict.score_folds(model, ckpt, ns, val_f, torch.device('cpu'), 'fp32')
            _, ty, ts = predict.score_folds(model, ckpt, ns, test_f, torch.device('cpu'), 'fp32')
        _SMALL[mode] = {'samples_per_s': max(r['samples_per_s'] for r in log),
                        'val_auc': best['val_auc'], 'val_f1': best['val_f1'],
                        'test_auc': float(test['auc']), 'test_f1': float(test['f1']),
                        'scores': (vy, vs, ty, ts)}
    _SMALL['data_dir'] = data
    _SMALL['setting'] = (f'{n} synthetic records of 2-6 s, window 3000, resnet18, {epochs} '
                         'epochs, batch 16, lr 1e-3, fp32, seed 42')
    return _SMALL


def _row(name, r):
    return md_row(name, f"{r['samples_per_s']:.1f}", f"{r['val_auc']:.3f}",
                  f"{r['val_f1']:.3f}", f"{r['test_auc']:.3f}", f"{r['test_f1']:.3f}")


_HEAD = md_head('run', 'train samples/s', 'val macro AUC', 'val macro F1', 'test macro AUC',
                'test macro F1')


def bench_length_aware(args):
    """main.py --length-aware vs the full window on the same records, seed and
    settings (small_runs): training samples/s (best epoch of each) and the
    validation and test macro AUC / F1 of each run's best checkpoint
    (predict.py, thresholds tuned on validation)."""
    runs = small_runs(args)
    full, aware = runs['cosine'], runs['aware']
    print(runs['setting'] + ':')
    print(_HEAD)
    print(_row('full window', full))
    print(_row('--length-aware', aware))
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
    import torch

    import utils
    from dataset import ECGDataset, LengthBucketSampler, collate
    from resnet import build_model
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


def study_thresholds(y_true, y_score):
    """The study's rule (utils.find_optimal_threshold): per class the best of
    100 thresholds np.linspace(0, 1, 100) by F1 of `score > t`."""
    import numpy as np
    from sklearn.metrics import f1_score
    grid = np.linspace(0, 1, 100)
    return np.array([grid[int(np.argmax([f1_score(y_true[:, c], y_score[:, c] > t,
                                                   zero_division=0) for t in grid]))]
                     for c in range(y_true.shape[1])])


def bench_deviations(args):
    """The measurable deviations from the study's code (README table), each
    against the study's choice on the same records and seed: the LR schedule
    (small_runs 'constant' vs 'cosine'), the decision thresholds (the
    study's 100-point grid vs exact F1-optimal cut points, on the constant-LR
    model), and in the baselines the standardisation of LR's inputs and the
    rhythm features (not in the study's final feature set)."""
    import contextlib
    import io
    import warnings

    import numpy as np

    import baselines
    import utils
    runs = small_runs(args)
    out = {}
    print(runs['setting'] + ':')
    print(_HEAD)
    print(_row('constant lr (study)', runs['constant']))
    print(_row('cosine lr (ours)', runs['cosine']))
    out['schedule'] = {m: {k: runs[m][k] for k in ('val_auc', 'val_f1', 'test_auc', 'test_f1')}
                       for m in ('constant', 'cosine')}
    vy, vs, ty, ts = runs['constant']['scores']
    f1 = {}
    for name, thr in (('grid', study_thresholds(vy, vs)),
                      ('exact', utils.f1_optimal_thresholds(vy, vs))):
        f1[name] = float(utils.compute_metrics(ty, ts, thr, n_boot=0).loc['macro', 'f1'])
    out['thresholds'] = f1
    print(f"thresholds (constant-lr model, tuned on validation): test macro F1 "
          f"{f1['grid']:.3f} with the study's 100-point grid, {f1['exact']:.3f} with exact "
          f"F1-optimal cut points")

    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        data = baselines.load_xy(runs['data_dir'], 42, None, jobs=1)
    from expert_features import extract_dataset
    cols = extract_dataset(runs['data_dir'], workers=1).columns
    lead_cols = np.array([c.split('_')[0] in utils.LEADS for c in cols])

    def score(name, make, keep):
        sub = {k: (v[0], v[1][:, keep], v[2]) for k, v in data.items() if k != 'folds'}
        sub['folds'] = data['folds']
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            model = baselines.OneVsRest(make).fit(sub['train'][1], sub['train'][2])
            vsc, tsc = model.predict_proba(sub['val'][1]), model.predict_proba(sub['test'][1])
        thr = utils.f1_optimal_thresholds(sub['val'][2], vsc)
        m = utils.compute_metrics(sub['test'][2], tsc, thr, n_boot=0).loc['macro']
        return {'test_auc': float(m['auc']), 'test_f1': float(m['f1'])}

    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    def lr_plain():
        return make_pipeline(SimpleImputer(strategy='median', keep_empty_features=True),
                             LogisticRegression(max_iter=1000, random_state=42))
    every = np.ones(len(cols), dtype=bool)
    rows = {'LR, standardised (ours)': score('LR', lambda: baselines.build_model('LR', 42), every),
            'LR, raw features (study)': score('LR', lr_plain, every),
            'LGB, with rhythm features (ours)': score(
                'LGB', lambda: baselines.build_model('LGB', 42), every),
            'LGB, lead features only (study)': score(
                'LGB', lambda: baselines.build_model('LGB', 42), lead_cols)}
    out['baselines'] = rows
    print(md_head('baseline variant', 'test macro AUC', 'test macro F1'))
    for name, r in rows.items():
        print(md_row(name, f"{r['test_auc']:.3f}", f"{r['test_f1']:.3f}"))


def _explain_times(wrapper, x, bg, k, nsamples, with_shap):
    """Seconds of shap_values.expected_gradients and of shap.GradientExplainer for
    classes 0..k-1 (the same estimate)."""
    import torch

    import shap
    import shap_values
    t_ours = timeit(lambda: shap_values.expected_gradients(wrapper, x, bg, list(range(k)),
                                                      nsamples, 0), 1)
    if not with_shap:
        return t_ours, None
    with torch.no_grad():
        ex = shap.GradientExplainer(wrapper, bg, batch_size=shap_values.SHAP_BATCH)
    t_shap = timeit(lambda: ex.shap_values(x, nsamples=nsamples, ranked_outputs=k,
                                           output_rank_order='max', rseed=0), 1)
    return t_ours, t_shap


def _app_model_and_upload(arch, window):
    """A random model loaded as the app loads one, and the upload: CPSC2018
    A0001 from ../shared, a synthetic 30-s record without it -> (info,
    [(name, bytes)], which record)."""
    import tempfile

    import synthetic
    with tempfile.TemporaryDirectory() as tmp:
        _, info = _random_checkpoint(tmp, arch, window)
        shared = SHARED / 'cpsc2018_wfdb'
        if (shared / 'A0001.hea').is_file():
            files = [(p.name, p.read_bytes()) for p in sorted(shared.glob('A0001.*'))]
            which = 'CPSC2018 A0001 (15 s)'
        else:
            rec = synthetic.make_record(0, 0, duration=30.0)
            synthetic.write_record(rec, tmp, 'A0001')
            files = [(f'A0001.{s}', (Path(tmp) / f'A0001.{s}').read_bytes())
                     for s in ('hea', 'mat')]
            which = 'synthetic 30-s record'
    return info, files, which


def _app_explanations(info, rec, window, t_fwd, nsamples, quick):
    """Explanations of 1, 2 and 3 classes (shap.GradientExplainer beside for
    1 and 2) and the once-per-model costs -> dict."""
    import torch

    import shap_values
    wrapper = shap_values.explained_model(info['model'], info['thresholds'],
                                          torch.device('cpu'), 'fp32')
    bg, _ = shap_values.background(info)
    x = torch.from_numpy(rec['x'])[None]
    t_bg = timeit(lambda: shap_values.background(info), 1)
    out = {}
    with torch.no_grad():
        t_ef = timeit(lambda: wrapper(torch.zeros(20, 12, window)), 1) if not quick else 0
    for k in (1, 2, 3):
        t_ours, t_shap = _explain_times(wrapper, x, bg, k, nsamples, with_shap=k <= 2)
        out[f'explain_{k}_class_s'] = round(t_ours, 1)
        extra = ''
        if t_shap is not None:
            out[f'shap_same_setting_{k}_class_s'] = round(t_shap, 1)
            extra = (f'; shap.GradientExplainer, same samples: {t_shap:.1f} s '
                     f'(x{t_shap / t_ours:.2f}); shap_values.py default (32 per class): '
                     f'~{t_shap * 32 / nsamples:.0f} s')
        out[f'explain_{k}_class_forwards'] = round(t_ours / t_fwd, 1)
        print(f'  explanation, {k} predicted class(es), {nsamples} samples each: {t_ours:.1f} s'
              f' = {t_ours / t_fwd:.0f} forward passes{extra}')
    print(f'  + once per model: E[f] over 20 background records {t_ef:.1f} s; flat-line '
          f'background set-up {t_bg:.2f} s')
    out['background_forward_20_s'] = round(t_ef, 1)
    return out


def bench_app(args):
    """app.py: upload to diagnosis and explanation, ResNet-34 x 12 x 15,000.

    Upload to diagnosis = what the app does when files arrive: stage the
    uploaded bytes, pair and read them (records.py), prepare, one forward
    pass, the decision table (warm: after one call, as in the running app,
    whose imports and model load happen once per process). The printout and
    the QRS measurements are drawn after the diagnosis is on the page and
    cached, so they are timed apart. Explanation: shap_values.explain's batched
    expected gradients (one forward per batch for all predicted classes,
    APP_NSAMPLES per class) against shap.GradientExplainer on the same
    classes and samples (the same estimate, one pass per class) and
    shap_values.py's default (32 samples per class).
    """
    import torch

    import clinic
    import shap_values
    import uploads
    import utils

    arch, window = ('resnet18', 2500) if args.quick else ('resnet34', utils.WINDOW)
    nsamples = 4 if args.quick else shap_values.APP_NSAMPLES
    info, files, which = _app_model_and_upload(arch, window)

    def diagnose():
        records, _ = uploads.load_uploads(files, info['leads'], window)
        prob = clinic.score(info, [records[0]['x']])[0]
        clinic.decision_table(prob, info['thresholds'], info['classes'], 'en')
        return records[0], prob

    t0 = time.perf_counter()
    rec, prob = diagnose()
    t_cold = time.perf_counter() - t0
    t_diag = timeit(diagnose, 3)
    t_read = timeit(lambda: uploads.load_uploads(files, info['leads'], window), 3)
    t_print = timeit(lambda: clinic.png(clinic.printout_figure(rec, 'x')), 2)
    t_meas = timeit(lambda: clinic.measure(rec['signal']), 2)
    t_fwd = timeit(lambda: clinic.score(info, [rec['x']]), 3)
    out = {'arch': arch, 'window': window, 'threads': torch.get_num_threads(),
           'record': which, 'diagnosis_s': round(t_diag, 3),
           'diagnosis_cold_s': round(t_cold, 2), 'read_s': round(t_read, 3),
           'printout_s': round(t_print, 2), 'measure_s': round(t_meas, 3), 'nsamples': nsamples}
    print(f'{arch}, 12 x {window}, {torch.get_num_threads()} torch thread(s), {which}:')
    print(f'  upload to diagnosis {t_diag:.2f} s (read {t_read:.3f} s, the rest is the '
          f'forward pass); first call in a fresh process {t_cold:.2f} s (imports)')
    print(f'  printout drawn after it {t_print:.2f} s, QRS measurements {t_meas:.3f} s '
          f'(both cached per record); one forward pass {t_fwd:.3f} s, the unit below')
    out['forward_s'] = round(t_fwd, 3)
    out.update(_app_explanations(info, rec, window, t_fwd, nsamples, args.quick))
    return out


def _format_cases(root, tmp):
    """[(format, file, the library's plain reader or None)]: ../shared's
    files, pydicom's test file and a CSV written here."""

    import numpy as np
    import pandas as pd
    import pydicom
    import pydicom.data
    import pyedflib
    import sierraecg
    sig = np.round(np.sin(np.arange(5000)[:, None] / 40 + np.arange(12)) * 1000) / 1000
    pd.DataFrame({'time': np.arange(5000) / 500, **{f'V{k}' if k < 7 else f'lead{k}':
                  sig[:, k - 1] for k in range(1, 13)}}).to_csv(tmp / 'written.csv',
                                                                   index=False)

    def dicom(path):
        ds = pydicom.dcmread(str(path))
        return ds.waveform_array(0) / 1000  # uV -> mV (these files' units)

    def philips(path):
        e = sierraecg.read_file(str(path))
        return np.array([lead.samples for lead in e.leads]).T[:5000] * 5 / 1000

    def edf(path):
        with pyedflib.EdfReader(str(path)) as f:
            return np.column_stack([f.readSignal(i) for i in range(f.signals_in_file)])

    def csv(path):
        return pd.read_csv(path).to_numpy()[:, 1:7]

    return [('dicom', root / 'dicom_ecg' / 'converted' / 'ecgtoolkit_Example.dcm', dicom),
            ('dicom', Path(pydicom.data.get_testdata_file('waveform_ecg.dcm')), dicom),
            ('muse', root / 'ge_muse_xml' / 'guangxi_teaching_sinus_rhythm.xml', None),
            ('cardiosoft', root / 'ge_cardiosoft_xml' / 'ecgprocess_example-XML1.xml', None),
            ('philips', root / 'philips_sierra_xml' / '2020-5-18_15-48-11.xml', philips),
            ('aecg', root / 'hl7_aecg' / 'mortara_eli250_example_aecg.xml', None),
            ('scp', root / 'scp_ecg' / 'converted' / 'ecgtoolkit_Example.scp', None),
            ('ishne', root / 'ishne_holter' / 'ECG_P28.01.ecg', None),
            ('edf', root / 'edf' / 'converted' / 'contec_0000050.edf', edf),
            ('csv', tmp / 'written.csv', csv)]


def _ecgdatakit_reader():
    """ecgdatakit's reader (path -> samples x leads in mV; its lead labels in
    .labels), or None where it is not importable."""
    import importlib.util
    if importlib.util.find_spec('ecgdatakit') is None:
        return None
    import warnings

    import ecgdatakit
    import numpy as np
    warnings.filterwarnings('ignore', module='pydicom')

    def kit(path):
        rec = ecgdatakit.FileParser().parse(str(path))
        cols = []
        for lead in rec.leads:
            p = lead.to_physical()
            unit = (p.units or 'uV').lower()
            cols.append(np.asarray(p.samples, float) * {'mv': 1, 'v': 1e3}.get(unit, 1e-3))
        n = min(len(c) for c in cols)
        kit.labels = [lead.label for lead in rec.leads]  # to align with our lead order
        return np.column_stack([c[:n] for c in cols])
    return kit


def _format_row(fmt, path, readers, repeat):
    """One file: our read time, each reader's time and its largest |ours -
    theirs| in uV over the samples both return -> a table row."""
    import numpy as np

    from records import read_record
    rec = read_record(path)
    ours = rec.signal
    t_ours = timeit(lambda p=path: read_record(p).signal, repeat)
    row = {'format': fmt, 'file': path.name, 'ours_ms': round(t_ours * 1e3, 1)}
    for name, fn in readers.items():
        if fn is None:
            continue
        try:
            theirs = fn(path)
        except Exception as e:  # noqa: BLE001 (a library that cannot read the file)
            row[f'{name}_ms'] = f'fails: {type(e).__name__}'
            continue
        row[f'{name}_ms'] = round(timeit(lambda f=fn, p=path: f(p), repeat) * 1e3, 1)
        n, k = min(len(ours), len(theirs)), min(ours.shape[1], theirs.shape[1])
        mine = ours[:n, :k]
        if name == 'ecgdatakit':  # its lead order: align by lead name
            from formats import lead_name
            at = {lead_name(lab): j for j, lab in enumerate(fn.labels)}
            pairs = [(i, at[lead]) for i, lead in enumerate(rec.leads) if lead in at]
            mine = ours[:n, [i for i, _ in pairs]]
            theirs = theirs[:, [j for _, j in pairs]]
        row[f'{name}_max_uV'] = round(float(np.nanmax(np.abs(mine - theirs[:n, :mine.shape[
            1]]))) * 1e3, 2)
    return row


def bench_formats(args):
    """Read time per 10-s 12-lead file of each hospital format: records.read_record
    (formats.py, content sniffing included) against the library's plain call
    (pydicom, sierraecg, pyedflib, pandas; ecgdatakit for every format where it
    is importable, e.g. PYTHONPATH=/tmp/ecgdk), and their agreement: the
    largest |ours - theirs| in uV over the samples both return. Reads
    ../shared/data/formats and pydicom's waveform_ecg.dcm, and a CSV it writes
    in a temporary folder (removed at the end)."""
    import tempfile

    import pandas as pd
    root = SHARED / 'formats'
    kit = _ecgdatakit_reader()
    out, rows = {}, []
    with tempfile.TemporaryDirectory(prefix='bench-formats-') as tmp:
        for fmt, path, lib in _format_cases(root, Path(tmp)):
            if not path.is_file():
                continue
            row = _format_row(fmt, path, {'lib': lib, 'ecgdatakit': kit}, 1 if args.quick else 5)
            rows.append(row)
            out[f'{fmt}_{path.stem}_ms'] = row['ours_ms']
    print(pd.DataFrame(rows).astype(object).fillna('-').to_string(index=False))
    return out


def _serve_records(tmp):
    """The bench's uploads: 8 real 10-s 12-lead records, synthetic without ../shared."""

    import synthetic
    shared = SHARED / 'physionet2021'
    names = sorted(p.stem for p in shared.glob('E075*.hea'))[:8] if shared.is_dir() else []
    if names:
        return [[(f'{n}.{s}', (shared / f'{n}.{s}').read_bytes()) for s in ('hea', 'mat')]
                for n in names], f'{len(names)} real 10-s 12-lead records (physionet2021 E075xx)'
    recs = []
    for i in range(8):
        synthetic.write_record(synthetic.make_record(i, i % 9, duration=10.0), tmp, f'S{i}')
        recs.append([(f'S{i}.{s}', (tmp / f'S{i}.{s}').read_bytes()) for s in ('hea', 'mat')])
    return recs, '8 synthetic 10-s records'


def _serve_in_process(info, score, recs, count, seconds, meas=False):
    """Records a second, read (uploads.load_uploads) and scored one at a time
    as the server does (+ its measurements, serve.measurements, with meas)
    -> (rate, CPU ms a record, first outputs)."""
    import psutil

    import serve
    import uploads

    def one(files):
        r, _ = uploads.load_uploads(files, info['leads'], info['window'])
        if meas:
            serve.measurements(r[0])
        return score(r[0]['x'][None])
    outs = [one(f) for f in recs[:2]]  # warm-up
    me = psutil.Process()
    cpu0, t0, k = sum(me.cpu_times()[:2]), time.perf_counter(), 0
    while k < count and time.perf_counter() - t0 < seconds:
        one(recs[k % len(recs)])
        k += 1
    cpu = (sum(me.cpu_times()[:2]) - cpu0) / k * 1000
    return k / (time.perf_counter() - t0), cpu, outs


def _serve_rss(proc):
    """Resident MB of a process and its children (uvicorn's workers)."""
    import psutil
    try:
        return sum(p.memory_info().rss for p in [proc] + proc.children(recursive=True)) / 2 ** 20
    except psutil.Error:
        return float('nan')


def _serve_cpu(proc):
    """CPU seconds (user + system) of a process and its children."""
    import psutil
    try:
        return sum(sum(p.cpu_times()[:2]) for p in [proc] + proc.children(recursive=True))
    except psutil.Error:
        return float('nan')


def _serve_clients(url, recs, clients, n, stop_at):
    """C concurrent clients (asyncio tasks on one connection pool, one
    thread) posting records N times each, or until stop_at -> (latencies,
    errors). One event loop rather than C threads: on 2 cores the threads'
    GIL hand-offs took 11 ms of CPU a request from the server they measure,
    the loop 4 ms."""
    import asyncio

    import httpx
    lat, errors = [], []

    async def client(c, h):
        for i in range(n):
            if time.perf_counter() > stop_at:
                return
            t = time.perf_counter()
            try:
                r = await h.post('/v1/predict',
                                 files=[('files', f) for f in recs[(c + i) % len(recs)]])
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            (lat if ok else errors).append(time.perf_counter() - t)

    async def run():
        async with httpx.AsyncClient(base_url=url, timeout=120,
                                     limits=httpx.Limits(max_connections=clients)) as h:
            await asyncio.gather(*(client(c, h) for c in range(clients)))
    asyncio.run(run())
    return lat, errors


def _serve_load(model_path, tmp, recs, backend, workers, clients, n, load_s):
    """`python serve.py` in a subprocess under C clients x N requests -> dict."""
    import socket
    import subprocess
    import sys

    import httpx
    import numpy as np
    import psutil
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    log_path = tmp / f'serve-{backend}-{workers}.log'
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve().parent / 'serve.py'),
             '--model-path', str(model_path), '--root', str(tmp), '--port', str(port),
             '--workers', str(workers), '--backend', backend, '--queue', str(2 * clients),
             '--audit-db', str(tmp / 'audit.sqlite3')], stdout=log, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}'
    try:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 180:
            try:
                if httpx.get(f'{url}/readyz', timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f'serve.py exited: {log_path.read_text()[-500:]}')
            time.sleep(0.5)
        _serve_clients(url, recs, workers * 2, 1, time.perf_counter() + 60)  # warm-up
        ps = psutil.Process(proc.pid)
        rss0, cpu0 = _serve_rss(ps), _serve_cpu(ps)
        t0 = time.perf_counter()
        lat, errors = _serve_clients(url, recs, clients, n, t0 + load_s)
        wall = time.perf_counter() - t0
        rss1, cpu1 = _serve_rss(ps), _serve_cpu(ps)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    ms = np.array(lat) * 1000
    pct = {f'p{q}_ms': float(np.percentile(ms, q)) if len(ms) else float('nan')
           for q in (50, 95, 99)}
    return {'backend': backend, 'workers': workers, 'clients': clients, 'requests': len(lat),
            'errors': len(errors), 'rps': len(lat) / wall, **pct, 'rss_warm_mb': rss0,
            'rss_end_mb': rss1, 'cpu_ms': (cpu1 - cpu0) / max(1, len(lat)) * 1000}


def bench_serve(args):
    """serve.py under a bounded load on 127.0.0.1 (issue 21; docs/serving.md).

    A random ResNet-34 on the study's 30-s window (the cost does not depend
    on the weights; --quick: ResNet-18, 5 s, two settings) is served by
    `python serve.py` in a subprocess per setting: backend torch / onnx
    (fp32) / onnx-int8, --workers 1 or 2. C clients (asyncio tasks) each
    post real 10-s 12-lead records (../shared/data/physionet2021, synthetic
    without it) N times; every loop stops after its count or its seconds.
    Prints throughput, p50/p95/p99 latency, errors, the server's CPU time a
    request and resident memory (all its processes) after the warm-up and at
    the end, and the same records read, scored and measured in-process one
    at a time (everything the API computes), so that the HTTP and multipart
    cost is a ratio ('x in-process'; the model alone is printed beside it).
    """
    import shutil
    import tempfile

    import numpy as np
    import torch

    import export
    import utils
    from resnet import probabilities

    arch, window = ('resnet18', 2500) if args.quick else ('resnet34', utils.WINDOW)
    n_one, n_four, load_s = (2, 2, 20) if args.quick else (40, 15, 120)
    backends = ('torch', 'onnx') if args.quick else ('torch', 'onnx', 'onnx-int8')
    settings = [('torch', 1, 1, n_one), ('onnx', 1, 2, n_four)] if args.quick else [
        ('torch', 1, 1, n_one), ('torch', 1, 4, n_four), ('torch', 2, 4, n_four),
        ('onnx', 1, 1, n_one), ('onnx', 1, 4, n_four), ('onnx-int8', 1, 1, n_one)]
    tmp = Path(tempfile.mkdtemp(prefix='bench-serve-'))
    try:
        recs, which = _serve_records(tmp)
        model_path, info = _random_checkpoint(tmp, arch, window)
        export.export(model_path, tmp, quantize=None if args.quick else 'int8', calibration=8,
                      info=info)
        scorers = {'torch': lambda x: probabilities(info['model'], x)}
        for b, p in (('onnx', 'fp32'), ('onnx-int8', 'int8'))[:len(backends) - 1]:
            sess = export.session(export.onnx_path(model_path, p))
            scorers[b] = lambda x, sess=sess: export.onnx_probabilities(sess, x)
        print(f'{arch}, 12 x {window}, {torch.get_num_threads()} torch thread(s), {which}; '
              f'each setting bounded to {load_s} s:')
        out = {'arch': arch, 'window': window, 'records': which, 'in_process_rps': {},
               'in_process_api_work_rps': {}, 'in_process_cpu_ms': {}}
        count, ref = (2 if args.quick else 2 * len(recs)), None
        for backend in backends:
            rate, _, probs = _serve_in_process(info, scorers[backend], recs, count, load_s / 8)
            api, cpu, _ = _serve_in_process(info, scorers[backend], recs, count, load_s / 8,
                                            True)
            ref = probs if ref is None else ref
            diff = max(float(np.abs(a - b).max()) for a, b in zip(probs, ref))
            out['in_process_rps'][backend] = rate
            out['in_process_api_work_rps'][backend] = api
            out['in_process_cpu_ms'][backend] = cpu
            print(f'  in-process {backend:9s}: read + model {rate:.2f} records/s ({1000 / rate:.0f}'
                  f' ms each), + measurements (all the API computes) {api:.2f}/s '
                  f'({1000 / api:.0f} ms, CPU {cpu:.0f} ms); max |prob - torch| {diff:.1e}')
        out['runs'] = []
        for backend, workers, clients, n in settings:
            r = _serve_load(model_path, tmp, recs, backend, workers, clients, n, load_s)
            # the HTTP, multipart, staging and JSON cost: served against the
            # same work (read, model, measurements) done in this process
            r['vs_in_process'] = r['rps'] / out['in_process_api_work_rps'][backend]
            out['runs'].append(r)
            print(f"  serve {backend:9s} workers {workers} clients {clients}: {r['requests']} "
                  f"ok, {r['errors']} errors, {r['rps']:.2f} req/s (x{r['vs_in_process']:.2f} "
                  f"in-process), p50 {r['p50_ms']:.0f} / p95 {r['p95_ms']:.0f} / p99 "
                  f"{r['p99_ms']:.0f} ms; server CPU {r['cpu_ms']:.0f} ms a request; RSS "
                  f"{r['rss_warm_mb']:.0f} -> {r['rss_end_mb']:.0f} MB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# --------------------------------------------------------------------------
# Global measurements (measure.py) against the synthetic truth, the carts'
# own values and neurokit2's delineation. Self-contained: its helpers start
# with _meas_.

_MEAS_KEYS = ('pr_ms', 'qrs_ms', 'qt_ms')
_MEAS_IEC = {'pr_ms': (10, 10), 'qrs_ms': (10, 10), 'qt_ms': (25, 30)}   # |mean|, SD (ms)


def _meas_neurokit(sig, fs, leads, method):
    """neurokit2's delineation of lead II (ecg_clean, ecg_peaks, then
    ecg_delineate(method)), median over beats -> {pr_ms, qrs_ms, qt_ms}
    (None where the method gives no such wave boundary). Raises nothing."""
    import warnings

    import neurokit2 as nk
    import numpy as np
    out = dict.fromkeys(_MEAS_KEYS)
    if 'II' not in leads:
        return out
    x = np.asarray(sig[leads.index('II')], dtype=float)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            clean = nk.ecg_clean(x, sampling_rate=int(fs))
            _, info = nk.ecg_peaks(clean, sampling_rate=int(fs))
            _, waves = nk.ecg_delineate(clean, info['ECG_R_Peaks'], sampling_rate=int(fs),
                                        method=method)
    except Exception:   # noqa: BLE001 -- a method that fails on a record gives nothing
        return out

    def med(a, b):
        if a not in waves or b not in waves:
            return None
        # pair each later boundary with the nearest earlier one (the methods
        # may return lists of different lengths)
        ea = np.asarray(waves[a], float)
        ea = ea[np.isfinite(ea)]
        d = []
        for t in np.asarray(waves[b], float):
            before = ea[(ea < t) & (ea > t - 0.6 * fs)]
            if np.isfinite(t) and len(before):
                d.append(t - before.max())
        d = np.array(d)
        return float(np.median(d) * 1000 / fs) if len(d) else None
    out['pr_ms'] = med('ECG_P_Onsets', 'ECG_R_Onsets')
    out['qrs_ms'] = med('ECG_R_Onsets', 'ECG_R_Offsets')
    out['qt_ms'] = med('ECG_R_Onsets', 'ECG_T_Offsets')
    return out


def _meas_stats(pairs):
    """[(ours or None, reference)] -> (mean, SD, n) of the differences."""
    import numpy as np
    d = np.array([a - b for a, b in pairs if a is not None and b is not None
                  and np.isfinite(b)])
    return (float(d.mean()), float(d.std()), len(d)) if len(d) else (float('nan'),) * 2 + (0,)


def _meas_synthetic(n, nk_methods):
    """Ours and neurokit2's methods against the generator's truth on n 10-s
    records (IAVB, LBBB, RBBB, AF, PVC, SNR x noise 0/0.5/1/2) -> rows."""
    import measure
    import synthetic
    from utils import LEADS
    classes = [['SNR'], ['IAVB'], ['LBBB'], ['RBBB'], ['AF'], ['PVC']]
    noise = [0.0, 0.5, 1.0, 2.0]
    got = {'ours': []} | {m: [] for m in nk_methods}
    secs = {m: 0.0 for m in got}
    truths = []
    for i in range(n):
        rec = synthetic.make_record(11, i, duration=10, classes=classes[i % 6],
                                    noise_scale=noise[(i // 6) % 4], borderline=0.2)
        sig = rec['signal'].T
        truths.append(rec['truth'])
        t0 = time.perf_counter()
        got['ours'].append(measure.measure(sig, 500, LEADS))
        secs['ours'] += time.perf_counter() - t0
        for m in nk_methods:
            t0 = time.perf_counter()
            got[m].append(_meas_neurokit(sig, 500, LEADS, m))
            secs[m] += time.perf_counter() - t0
    rows = {}
    for m, res in got.items():
        for k in _MEAS_KEYS:
            defined = [(r[k], t[k]) for r, t in zip(res, truths) if t[k] == t[k]]
            rows[(m, k)] = _meas_stats(defined) + (len(defined),)
        af = [r['pr_ms'] for r, t in zip(res, truths) if t['rhythm'] == 'af']
        rows[(m, 'af_pr_given')] = sum(v is not None for v in af), len(af)
        rows[(m, 'ms_per_record')] = 1000 * secs[m] / n
    return rows


def _meas_cart_files(root):
    """Records under root that carry the cart's measurements
    (records.read_record -> rec.device_measurements, from the formats
    readers) -> [(name, record)]."""

    from records import RecordError, read_record
    out = []
    for p in sorted(Path(root).rglob('*')):
        if not p.is_file() or p.suffix.lower() in ('.md', '.ann', '.atr', '.dat', '.mat'):
            continue
        try:
            rec = read_record(p)
        except (RecordError, ValueError, OSError):
            continue
        if getattr(rec, 'device_measurements', {}):
            out.append((p.name, rec))
    return out


def bench_measurements(args):
    """measure.py (IEC 60601-2-25 tolerances: PR and QRS mean difference
    within +/-10 ms and SD <= 10 ms, QT within +/-25 and <= 30) against the
    synthetic truth and against the carts' values on every file of
    ../shared/data/formats that carries them, beside neurokit2's
    delineation methods on lead II; time per 10-s 12-lead record."""
    import numpy as np

    import measure
    try:
        import neurokit2  # noqa: F401
        # ('peak' gives no QRS onset or offset, so no interval)
        nk_methods = ['dwt', 'cwt', 'prominence']
    except ImportError:
        print('neurokit2 is not installed: its rows are skipped '
              '(pip install --no-deps -r requirements-bench.txt)')
        nk_methods = []
    n = 24 if args.quick else 240
    rows = _meas_synthetic(n, nk_methods)
    print(f'synthetic truth, {n} records (6 classes x 4 noise levels), difference '
          'mean +/- SD ms (records measured / with a defined figure); IEC limits '
          + ', '.join(f'{k} {a}/{b}' for k, (a, b) in _MEAS_IEC.items()))
    out = {}
    for m in ['ours'] + [f for f in nk_methods]:
        cells = []
        for k in _MEAS_KEYS:
            mu, sd, cnt, tot = rows[(m, k)]
            ok = abs(mu) <= _MEAS_IEC[k][0] and sd <= _MEAS_IEC[k][1]
            cells.append(f'{k} {mu:+6.1f} +/- {sd:5.1f} ({cnt}/{tot}){" ok" if ok else "   "}')
            out[f'{m}_{k}_mean'], out[f'{m}_{k}_sd'] = round(mu, 1), round(sd, 1)
        given, n_af = rows[(m, 'af_pr_given')]
        print(f'  {m:<11}' + '  '.join(cells) + f'  AF with a PR: {given}/{n_af}  '
              f'{rows[(m, "ms_per_record")]:.0f} ms/record')
        out[f'{m}_ms_per_record'] = round(rows[(m, 'ms_per_record')], 1)
    root = SHARED / 'formats'
    files = _meas_cart_files(root)
    if not files:
        print(f'no file under {root} carries the cart\'s measurements '
              '(needs ../shared/data and the formats readers: rec.device_measurements)')
        return out
    keys = ['hr', 'pr_ms', 'qrs_ms', 'qt_ms', 'p_axis', 'qrs_axis', 't_axis']
    print('against the cart (ours - cart; dwt = neurokit2 DWT on lead II - cart):')
    pairs = {k: [] for k in keys} | {f'dwt_{k}': [] for k in _MEAS_KEYS}
    for name, rec in files:
        cart = rec.device_measurements
        m = measure.measure(rec)
        sig = np.nan_to_num(rec.signal.T)
        dwt = _meas_neurokit(sig, rec.fs, rec.leads, 'dwt') if nk_methods else {}
        cells = []
        for k in keys:
            if k in cart:
                pairs[k].append((m[k], cart[k]))
                ours = '-' if m[k] is None else f'{m[k]:.0f}'
                cells.append(f'{k} {ours}/{cart[k]:.0f}')
            if k in _MEAS_KEYS and k in cart and dwt.get(k) is not None:
                pairs[f'dwt_{k}'].append((dwt[k], cart[k]))
        print(f'  {name[:34]:<34} ' + '  '.join(cells))
    for k, p in pairs.items():
        mu, sd, cnt = _meas_stats(p)
        if cnt:
            print(f'  {k:<12} {mu:+6.1f} +/- {sd:5.1f} over {cnt} files')
            out[f'cart_{k}_mean'], out[f'cart_{k}_sd'] = round(mu, 1), round(sd, 1)
    return out


SECTIONS = {
    'synthetic': bench_synthetic, 'preprocess': bench_preprocess,
    'loader': bench_loader, 'records': bench_records,
    'train': bench_train, 'qrs': bench_qrs,
    'features': bench_features, 'shap': bench_shap, 'metrics': bench_metrics,
    'length_aware': bench_length_aware, 'deviations': bench_deviations,
    'shap_population': bench_shap_population,
    'app': bench_app,
    'formats': bench_formats, 'serve': bench_serve, 'measurements': bench_measurements,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--only', default=None, metavar='NAMES',
                        help=f"comma-separated sections of {','.join(SECTIONS)} (default: all)")
    parser.add_argument('--quick', action='store_true',
                        help='tiny sizes: checks the benchmarks run, numbers are not meaningful')
    args = parser.parse_args()
    names = args.only.split(',') if args.only else list(SECTIONS)
    summary = {}
    for name in names:
        print(f'\n=== {name} ===', flush=True)
        summary[name] = SECTIONS[name](args)
    print('\nSUMMARY ' + json.dumps(summary, default=float))


if __name__ == '__main__':
    main()

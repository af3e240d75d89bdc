"""Benchmarks: `make bench` (or `python bench.py [--only NAME] [--quick]`).

Every figure is a ratio of two things measured side by side in this same run,
because the machines are shared and noisy: absolute seconds are printed for
context only. Each section returns its headline numbers; the summary at the
end prints them as one JSON object.
"""
import argparse
import json
import time


def timeit(fn, repeat=3):
    """Best-of-`repeat` wall time of fn() in seconds (best-of filters noise)."""
    best = float('inf')
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_synthetic(args):
    """synthetic.py: records/s per core."""
    raise NotImplementedError('synthetic helper fills this in')


def bench_preprocess(args):
    """preprocess.py: header scan speed, cache build vs rdsamp-per-record."""
    raise NotImplementedError('data helper fills this in')


def bench_loader(args):
    """dataset.py: loader samples/s vs parsing WFDB per access (target >= 20x)."""
    raise NotImplementedError('data helper fills this in')


def bench_train(args):
    """main.py: training step samples/s vs plain fp32 + WFDB parsing (>= 2x);
    GFLOP/s vs measured matmul peak; inference ms/record; length-aware mode."""
    raise NotImplementedError('model helper fills this in')


def bench_qrs(args):
    """QRSDetectorOffline vs biosppy hamilton and wfdb XQRS: accuracy, records/s."""
    raise NotImplementedError('features helper fills this in')


def bench_features(args):
    """expert_features.py vs straightforward per-lead pandas/biosppy (>= 3x)."""
    raise NotImplementedError('features helper fills this in')


def bench_shap(args):
    """shap_values.py: seconds per explained record (target <= 30 s).

    Ours: the default settings (ResNet-34, random init as only the cost matters,
    12 leads x 15,000 samples, 100 background records, --nsamples default,
    select_precision's precision) explaining the predicted classes; measured
    for one class, and 2 classes cost twice that (the explainer's cost is
    linear in classes x nsamples). Naive: the study's call, all 9 outputs at
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
    device = torch.device('cpu')
    precision = utils.select_precision(device)
    torch.manual_seed(0)
    model = build_model(arch, 12).eval()
    gen = torch.Generator().manual_seed(0)
    background = 0.3 * torch.randn(n_bg, 12, window, generator=gen)
    x = 0.3 * torch.randn(1, 12, window, generator=gen)

    def explainer(prec):
        wrapper = shap_values.explained_model(model, np.full(9, 0.5), device, prec, chunk=16)
        with torch.no_grad():
            return shap.GradientExplainer(wrapper, background, batch_size=16)

    t0 = time.perf_counter()
    ours = explainer(precision)
    t_bg = time.perf_counter() - t0
    t_one = timeit(lambda: ours.shap_values(x, nsamples=nsamples, ranked_outputs=1, rseed=0),
                   repeat=1)
    naive = explainer('fp32')
    t_naive = timeit(lambda: naive.shap_values(x, nsamples=naive_ns, rseed=0), repeat=1)
    t_naive *= 200 / naive_ns
    out = {'arch': arch, 'window': window, 'nsamples': nsamples, 'precision': precision,
           'background_forward_s': round(t_bg, 1),
           's_per_record_1_class': round(t_one, 1), 's_per_record_2_classes': round(2 * t_one, 1),
           'naive_s_per_record_extrapolated': round(t_naive, 1),
           'speedup_1_class': round(t_naive / t_one, 1),
           'speedup_2_classes': round(t_naive / (2 * t_one), 1)}
    print(f'{arch}, 12 x {window}, background {n_bg} (one-off forward {t_bg:.1f} s), '
          f'{precision}: {t_one:.1f} s per record with 1 predicted class, '
          f'{2 * t_one:.1f} s with 2 (nsamples {nsamples}); naive (9 outputs x 200 samples, '
          f'fp32; measured at {naive_ns} and extrapolated): {t_naive:.0f} s per record; '
          f'ratio {t_naive / t_one:.0f}x (1 class), {t_naive / (2 * t_one):.0f}x (2 classes)')
    return out


SECTIONS = {
    'synthetic': bench_synthetic, 'preprocess': bench_preprocess,
    'loader': bench_loader, 'train': bench_train, 'qrs': bench_qrs,
    'features': bench_features, 'shap': bench_shap,
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

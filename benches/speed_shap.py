"""Speed, `python bench.py --only shap`: shap_values.py's seconds per
explained record against the study's call (shap.GradientExplainer, 9 outputs
x 200 samples, fp32)."""
import time

import numpy as np
import torch

import shap
import shap_values
from benches.common import timeit
from records import WINDOW
from resnet import build_model


def run(args):
    """shap_values.py: seconds per explained record (target <= 30 s).

    Ours: the default settings (ResNet-34, random init as only the cost matters,
    12 leads x 15,000 samples, 100 background records, --nsamples default,
    shap_values.py's precision, on the GPU where there is one) through
    shap_values.explain_record, the script's own engine, for one class and for
    two (they share each batch's forward pass). Naive: the study's call, all 9 outputs at
    nsamples=200 in fp32, measured at nsamples=4 and extrapolated x50.
    """
    arch, window, n_bg = ('resnet18', 2500, 4) if args.quick else ('resnet34', WINDOW, 100)
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

"""Speed, `python bench.py --only app`: app.py's upload to diagnosis, and its
explanations against shap.GradientExplainer on the same classes and samples."""
import tempfile
import time
from pathlib import Path

import torch

import shap
import shap_values
import synthetic
from benches.common import SHARED, random_checkpoint, timeit
from records import WINDOW, uploads
from web import clinic


def _explain_times(wrapper, x, bg, k, nsamples, with_shap):
    """Seconds of shap_values.expected_gradients and of shap.GradientExplainer for
    classes 0..k-1 (the same estimate)."""
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
    with tempfile.TemporaryDirectory() as tmp:
        _, info = random_checkpoint(tmp, arch, window)
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
    wrapper = shap_values.explained_model(info.model, info.thresholds,
                                          torch.device('cpu'), 'fp32')
    bg, _ = shap_values.background(info)
    x = torch.from_numpy(rec.x)[None]
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


def run(args):
    """app.py: upload to diagnosis and explanation, ResNet-34 x 12 x 15,000.

    Upload to diagnosis = what the app does when files arrive: stage the
    uploaded bytes, pair and read them (records/), prepare, one forward
    pass, the decision table (warm: after one call, as in the running app,
    whose imports and model load happen once per process). The printout and
    the QRS measurements are drawn after the diagnosis is on the page and
    cached, so they are timed apart. Explanation: shap_values.explain's batched
    expected gradients (one forward per batch for all predicted classes,
    APP_NSAMPLES per class) against shap.GradientExplainer on the same
    classes and samples (the same estimate, one pass per class) and
    shap_values.py's default (32 samples per class).
    """
    arch, window = ('resnet18', 2500) if args.quick else ('resnet34', WINDOW)
    nsamples = 4 if args.quick else shap_values.APP_NSAMPLES
    info, files, which = _app_model_and_upload(arch, window)

    def diagnose():
        records, _ = uploads.load_uploads(files, info.leads, window)
        prob = clinic.score(info, [records[0].x])[0]
        clinic.decision_table(prob, info.thresholds, info.classes, 'en')
        return records[0], prob

    t0 = time.perf_counter()
    rec, prob = diagnose()
    t_cold = time.perf_counter() - t0
    t_diag = timeit(diagnose, 3)
    t_read = timeit(lambda: uploads.load_uploads(files, info.leads, window), 3)
    t_print = timeit(lambda: clinic.png(clinic.printout_figure(rec, 'x')), 2)
    t_meas = timeit(lambda: clinic.record_measurements(rec.signal), 2)
    t_fwd = timeit(lambda: clinic.score(info, [rec.x]), 3)
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

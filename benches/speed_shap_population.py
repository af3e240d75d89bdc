"""Speed, `python bench.py --only shap_population`: shap_population.py's
figures per explained record against the SHAP computation they follow."""
import tempfile
from pathlib import Path

import numpy as np
import torch

import shap_population
import shap_values
import synthetic
import utils
from benches.common import timeit
from records import FS, LEADS
from resnet import build_model


def run(args):
    """shap_population.py: the waterfalls, summaries and beat-aligned
    profiles drawn per explained record, against the SHAP computation they
    follow (the demo's: ResNet-18, 12 x 5,000 samples, --nsamples default, one
    predicted class), measured side by side. Records: synthetic PVC and STD
    records of 10 s with their .atr; values: the input times noise, as cheap
    stand-ins of the right shape (the drawing cost does not depend on them)."""
    n_rec, window = (2, 2500) if args.quick else (4, 5000)
    nsamples = 4 if args.quick else shap_values.get_args_parser().get_default('nsamples')
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        records = {}
        for i in range(n_rec):
            cls = ['PVC', 'STD'][i % 2]
            rec = synthetic.make_record(0, i, duration=window / FS, classes=[cls])
            name = synthetic.record_name(i)
            synthetic.write_record(rec, tmp / 'data', name)
            x = rec['signal'].T.astype(np.float32)
            v = (x * rng.normal(0, 1e-2, x.shape)).astype(np.float32)
            records[name] = {'x': x, 'length': window, 'prob': np.full(9, 0.9),
                             'threshold': np.full(9, 0.5),
                             'classes': np.array([utils.CLASSES.index(cls)]),
                             'values': v[None], 'fx': np.array([float(v.sum())])}
        t_fig = timeit(lambda: shap_population.write_population_outputs(
            tmp / 'out', records, LEADS, np.zeros(9), data_dir=tmp / 'data'), 1)
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

"""A trained model as ONNX, for onnxruntime (serve.py --backend onnx) or any
other ONNX runtime: the checkpoint's ResNet with a dynamic batch axis, a JSON
sidecar that says what it expects and how to read its output, and optionally an
int8 copy quantised with onnxruntime's static quantisation.

    python export.py --model-path models/SYNTH-all-s42-f7/best.pt
    python export.py --model-path models/CPSC-all-s42-f10/best.pt --quantize int8
    python export.py --model-path models/CPSC-all-s42-f10/best.pt --check 8
    # int8 against fp32 on the run's test fold: macro AUC/F1, size, speed
    python export.py --model-path models/SYNTH-all-s42-f7/best.pt --quantize int8 --evaluate

Writes, beside the checkpoint:
    model.onnx        input 'x' (batch, leads, window) float32 mV at 500 Hz,
                      output 'logits' (batch, classes); sigmoid gives the
                      probabilities, compared with the thresholds below;
                      the network as (1 x k) 2-D convolutions
                      (resnet.Conv2dTwin: onnxruntime's fast CPU kernels;
                      a --length-aware model stays 1-D)
    model.onnx.json   classes, leads, window, sampling rate, thresholds and
                      where they were tuned, the fold manifest, the
                      checkpoint's sha256, the ONNX file's sha256
    model.int8.onnx (+ .json)   with --quantize int8: weights int8 per
                      channel, activations uint8 (QDQ), calibrated on
                      --calibration training records of the run's own
                      training folds (preprocess.py's cache of its data_dir),
                      or synthetic records when that data is not here (the
                      sidecar says which)
Prints the largest |logit| difference between onnxruntime and torch fp32 on
--check synthetic records (the parity test in tests/test_export.py requires
<= 1e-4). The model input is made by records.prepare, as for every script.
"""
import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

import records
import runs
import synthetic
import utils
from dataset import ECGDataset
from resnet import Conv2dTwin, batch_logits

OPSET = 17           # onnxruntime 1.31 runs it; the legacy exporter's best-tested opset
PARITY_TOL = 1e-4    # max |logit| difference onnxruntime vs torch fp32 that a graph must hold
CALIBRATION = 64     # training records for int8 calibration: enough to fix the ranges
# 2: the graph is resnet.Conv2dTwin (serve.py re-exports a model.onnx of an
# older version, as it does one made from another checkpoint)
EXPORT_VERSION = 2


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model-path', required=True, metavar='PT',
                        help='checkpoint of main.py (models/<run>/best.pt)')
    utils.add_root_arg(parser)
    parser.add_argument('--quantize', default=None, choices=['int8'],
                        help='also write model.int8.onnx (static quantisation) (default: no)')
    parser.add_argument('--calibration', default=CALIBRATION, type=int, metavar='N',
                        help=f'records for int8 calibration (default: {CALIBRATION})')
    parser.add_argument('--check', default=4, type=int, metavar='N',
                        help='synthetic records for the printed parity check, 0 = none '
                             '(default: 4)')
    parser.add_argument('--evaluate', action='store_true',
                        help="with --quantize: score the run's test fold (preprocess.py's cache "
                             'of its data_dir) with fp32 and int8 onnxruntime and print macro '
                             'AUC/F1 at the run\'s thresholds, sizes and speed (default: no)')
    parser.add_argument('--opset', default=OPSET, type=int, metavar='V',
                        help=f'ONNX opset (default: {OPSET})')
    return parser


def layout(model):
    """'conv2d': exported as resnet.Conv2dTwin (1 x k 2-D convolutions, which
    onnxruntime runs ~1.3x faster on the CPU at the same outputs); 'conv1d'
    for a model that masks its padding (--length-aware), exported as it is."""
    return 'conv1d' if getattr(model, 'mask_padding', False) else 'conv2d'


def graph_of(model):
    """The module export_onnx exports for `model` (see layout)."""
    return Conv2dTwin(model) if layout(model) == 'conv2d' else model


def export_onnx(model, leads, window, out, opset=OPSET):
    """torch model -> ONNX file at `out` (atomically), batch axis dynamic;
    the graph of graph_of(model). The TorchScript-based exporter: three
    times faster than the dynamo one here and its graph quantises as is; the
    dynamo exporter is the fallback where a torch release has dropped it."""
    model = graph_of(model)
    x = torch.zeros(2, len(leads), window)
    with utils.atomic_path(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the legacy exporter's deprecation notice
        try:
            torch.onnx.export(model, (x,), str(tmp), input_names=['x'], output_names=['logits'],
                              dynamic_axes={'x': {0: 'batch'}, 'logits': {0: 'batch'}},
                              opset_version=opset, dynamo=False)
        except (TypeError, RuntimeError, NotImplementedError):
            batch = torch.export.Dim('batch', min=1, max=4096)
            torch.onnx.export(model, (x,), str(tmp), input_names=['x'], output_names=['logits'],
                              dynamic_shapes=({0: batch},), opset_version=max(opset, 18),
                              dynamo=True)
    return Path(out)


def sidecar(run, onnx_path, precision, calibration=None):
    """What a runtime needs besides the graph: the checkpoint's self-description
    (run: runs.Run)."""
    ckpt, src = run.ckpt, run.source
    tuned = src['kind'] == 'tuned'
    return {'onnx': Path(onnx_path).name, 'onnx_sha256': utils.sha256_file(onnx_path),
            'export_version': EXPORT_VERSION, 'precision': precision,
            'layout': layout(run.model), 'input': 'x', 'output': 'logits',
            'output_is': 'logits; sigmoid gives the probability per class',
            'classes': list(run.classes), 'leads': list(run.leads),
            'window': int(run.window), 'sampling_rate_hz': records.FS,
            'units': 'mV, quantised to 1 uV (records.prepare)',
            'thresholds': dict(zip(run.classes, map(float, run.thresholds))),
            'thresholds_tuned_on': src['tuned_on'] if tuned else None,
            'thresholds_file': src['path'] if tuned else None,
            'fold_manifest': ckpt.get('fold_manifest'), 'folds': ckpt.get('folds'),
            'arch': ckpt.get('arch'), 'mask_padding': bool(ckpt.get('mask_padding', False)),
            'checkpoint': str(run.path), 'checkpoint_sha256': run.sha256,
            'run': run.name, 'database': run.database, 'calibration': calibration}


def session(path, threads=None):
    """An onnxruntime CPU session; threads None = onnxruntime's choice (all cores)."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # its warnings about unused initialisers are noise here
    # Idle threads sleep instead of spinning: the same latency (76 ms a
    # ResNet-34 pass either way) for 17% less CPU, which serve.py's parsing
    # and measurements use on the same cores.
    opts.add_session_config_entry('session.intra_op.allow_spinning', '0')
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=['CPUExecutionProvider'])


def onnx_logits(sess, x, batch_size=32):
    """(n, leads, window) -> logits (n, classes) float32, in batches."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = [sess.run(None, {'x': x[i:i + batch_size]})[0] for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, sess.get_outputs()[0].shape[1]),
                                                    np.float32)


def onnx_probabilities(sess, x, batch_size=32):
    """The onnxruntime counterpart of resnet.probabilities: sigmoid of the logits."""
    z = onnx_logits(sess, x, batch_size).astype(np.float64)
    return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


def torch_logits(model, x, batch_size=32):
    x = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
    out = [batch_logits(model, x[i:i + batch_size], torch.device('cpu'), 'fp32').numpy()
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out)


def synthetic_inputs(n, leads, window, seed=0):
    """n synthetic records (synthetic.py, classes in turn) as model inputs,
    through records.prepare like any record."""
    xs = []
    with tempfile.TemporaryDirectory(prefix='ecg-export-') as tmp:
        for i in range(n):
            rec = synthetic.make_record(seed + i, i % len(utils.CLASSES),
                                        duration=max(10.0, window / records.FS))
            synthetic.write_record(rec, tmp, f'S{i:04d}')
            xs.append(records.prepare(records.read_record(Path(tmp) / f'S{i:04d}.hea'),
                                      leads, window).x)
    return np.stack(xs).astype(np.float32)


def calibration_inputs(run, root, n):
    """-> (inputs (m, leads, window), description): m <= n training records
    of the run (runs.training_records: drawn as the SHAP background is,
    seeded), else synthetic."""
    card = run.card
    drawn = runs.training_records(run, n, root)
    if drawn is not None:
        x, ids = drawn
        return x.numpy(), f"{len(ids)} training records of {card['database']} " \
                          f"(folds {card['train_folds']}, seed {card['seed']})"
    return synthetic_inputs(n, run.leads, run.window), \
        f'{n} synthetic records (the training data {card["data_dir"]} is not here)'


def quantize_int8(fp32_path, out, calib):
    """Static int8 quantisation (QDQ, weights per channel) calibrated on
    `calib` (m, leads, window) -> out."""
    # only --quantize needs it, and it loads onnx and its shape inference (~0.6 s)
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib[i:i + 1] for i in range(len(calib)))

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {'x': np.ascontiguousarray(x, dtype=np.float32)}

    with utils.atomic_path(Path(out).with_suffix('.pre.onnx')) as pre, \
            utils.atomic_path(out) as tmp:
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(tmp), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8)
    Path(out).with_suffix('.pre.onnx').unlink(missing_ok=True)
    return Path(out)


def onnx_path(model_path, precision='fp32'):
    """models/<run>/best.pt -> models/<run>/model.onnx (or model.int8.onnx)."""
    return Path(model_path).parent / ('model.onnx' if precision == 'fp32' else 'model.int8.onnx')


def export(model_path, root='.', quantize=None, calibration=CALIBRATION, opset=OPSET,
           run=None):
    """Write model.onnx (+ model.int8.onnx) and their sidecars -> (list of
    paths, the runs.Run exported; `run` when given, else loaded)."""
    run = run or runs.load_run(model_path, root)
    out = onnx_path(model_path)
    export_onnx(run.model, run.leads, run.window, out, opset)
    utils.atomic_write_json(sidecar(run, out, 'fp32'), out.with_name(out.name + '.json'))
    written = [out, out.with_name(out.name + '.json')]
    if quantize == 'int8':
        calib, where = calibration_inputs(run, root, calibration)
        q = quantize_int8(out, onnx_path(model_path, 'int8'), calib)
        utils.atomic_write_json(sidecar(run, q, 'int8', where), q.with_name(q.name + '.json'))
        written += [q, q.with_name(q.name + '.json')]
    return written, run


def evaluate_int8(run, root, written):
    """fp32 vs int8 onnxruntime on the run's test fold -> dict of macro
    AUC/F1 (the run's thresholds), file sizes and ms a record (batch 1)."""
    card = run.card
    data_dir = Path(card['data_dir'])
    data_dir = data_dir if data_dir.is_absolute() else Path(root) / data_dir
    ds = ECGDataset(data_dir, card['test_fold'], run.leads, window=run.window,
                    augment=False, trim=False)
    x = np.stack([ds[i][0].numpy() for i in range(len(ds))])
    y = np.stack([ds[i][1].numpy() for i in range(len(ds))])
    out = {'records': len(ds), 'test_fold': card['test_fold']}
    for p in [w for w in written if w.suffix == '.onnx']:
        key = 'int8' if 'int8' in p.name else 'fp32'
        sess = session(p)
        prob = onnx_probabilities(sess, x)
        m = utils.compute_metrics(y, prob, run.thresholds, run.classes, n_boot=0)
        onnx_probabilities(sess, x[:2], 1)  # warm-up
        t0 = time.perf_counter()
        n = min(len(x), 20)
        onnx_probabilities(sess, x[:n], 1)
        out[key] = {'macro_auc': float(m.loc['macro', 'auc']),
                    'macro_f1': float(m.loc['macro', 'f1']), 'mb': p.stat().st_size / 2 ** 20,
                    'ms_per_record': (time.perf_counter() - t0) / n * 1000, 'prob': prob}
    d = np.abs(out['int8'].pop('prob') - out['fp32'].pop('prob')).max()
    out['max_abs_prob_diff'] = float(d)
    out['delta_auc'] = out['int8']['macro_auc'] - out['fp32']['macro_auc']
    out['speedup'] = out['fp32']['ms_per_record'] / out['int8']['ms_per_record']
    return out


def main(argv=None):
    args = get_args_parser().parse_args(argv)
    t0 = time.perf_counter()
    written, run = export(args.model_path, args.root, args.quantize, args.calibration,
                          args.opset)
    for p in written:
        print(f'wrote {p} ({p.stat().st_size / 2 ** 20:.1f} MB)')
    if args.check:
        x = synthetic_inputs(args.check, run.leads, run.window, seed=1000)
        ref = torch_logits(run.model, x)
        for p in written:
            if p.suffix == '.onnx':
                diff = float(np.abs(onnx_logits(session(p), x) - ref).max())
                ok = ('int8: not held to 1e-4' if 'int8' in p.name else
                      'ok' if diff <= PARITY_TOL else 'ABOVE 1e-4')
                print(f'{p.name}: max |logit - torch fp32| on {args.check} synthetic records '
                      f'{diff:.2e} ({ok})')
    if args.evaluate and args.quantize:
        r = evaluate_int8(run, args.root, written)
        for k in ('fp32', 'int8'):
            print(f"{k}: test fold {r['test_fold']} ({r['records']} records) macro AUC "
                  f"{r[k]['macro_auc']:.4f}, F1 {r[k]['macro_f1']:.4f}; {r[k]['mb']:.1f} MB; "
                  f"{r[k]['ms_per_record']:.1f} ms a record (batch 1)")
        print(f"int8 - fp32: macro AUC {r['delta_auc']:+.4f}, speed x{r['speedup']:.2f}, "
              f"max |prob diff| {r['max_abs_prob_diff']:.4f}")
    print(f'done in {time.perf_counter() - t0:.1f} s')
    return written


if __name__ == '__main__':
    main()

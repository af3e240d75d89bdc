"""What the web app (app.py) computes, without Streamlit: models and their cards,
uploads, diagnosis, measurements, explanation, figures and the PDF report.
app.py only draws the page; tests and bench.py call these functions directly.

    import clinic
    info = clinic.load_model('models/SYNTH-all-s42-f7/best.pt')
    records, problems = clinic.load_uploads([('A0001.hea', b'...'), ('A0001.mat', b'...')],
                                            info['leads'], info['window'])
    scores = clinic.score(info, [r['x'] for r in records])
    table = clinic.decision_table(scores[0], info['thresholds'], 'en')
    ex = clinic.explain(info, records[0], nsamples=16)   # SHAP of the predicted classes

Uploads are written, under sanitised names, into a temporary folder that is
removed as soon as the records are read (they are kept in memory only).
"""
import hashlib
import io
import json
import re
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

import utils
from app_text import RTL, t
from utils import CLASSES, FS, LEADS

# One uploaded file, and the files of one .zip together (uncompressed): an ECG
# of 24 h at 500 Hz x 12 leads in int16 is ~1 GB; 10-60 s records are < 2 MB.
# Kept equal to server.maxUploadSize (MB) in .streamlit/config.toml.
MAX_FILE_BYTES = 50 * 2 ** 20
MAX_ZIP_BYTES = 200 * 2 ** 20
UNSAFE = re.compile(r'[^A-Za-z0-9._+-]')

# The app's explanation: expected gradients as shap_values.py, but cheaper so that
# a record takes <= 15 s on a 2-core CPU with ResNet-34 (see explain()).
APP_NSAMPLES = 16
APP_BACKGROUND = 20
SHAP_BATCH = 8          # interpolated inputs per forward/backward (memory ~0.1 GB each)
HIGHLIGHT_PERCENTILE = 95.0
HIGHLIGHT_COLORS = ['#d62728', '#1f77b4', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b',
                    '#e377c2', '#17becf', '#bcbd22']


# --------------------------------------------------------------------------
# Models.

def find_models(root='.'):
    """models/*/best.pt under root, newest first."""
    paths = [p for p in Path(root, 'models').glob('*/best.pt') if p.is_file()]
    return sorted(paths, key=lambda p: p.stat().st_mtime, reverse=True)


def model_key(path):
    """Identity of a checkpoint file for caches: path, size and mtime."""
    st = Path(path).stat()
    return f'{Path(path).resolve()}:{st.st_size}:{st.st_mtime_ns}'


def load_model(path, root='.'):
    """A checkpoint -> dict(model, ckpt, path, leads, window, thresholds,
    threshold_source, card, bare, synthetic, key). A main.py checkpoint
    describes itself; a bare state dict (the study's weights) is taken as
    12 leads with thresholds 0.5. Raises SystemExit with the reason."""
    from resnet import load_checkpoint
    path = Path(path)
    try:
        model, ckpt = load_checkpoint(path)
        bare = False
    except SystemExit as e:
        if 'bare state_dict' not in str(e):
            raise
        model, ckpt = load_checkpoint(path, leads='all')
        bare = True
    leads = list(ckpt['leads'])
    window = int(ckpt.get('window') or (ckpt.get('args') or {}).get('window') or utils.WINDOW)
    thresholds, source = run_thresholds(path, ckpt, root, bare)
    card = model_card(path, ckpt, root, bare)
    card['thresholds'] = source
    return {'model': model, 'ckpt': ckpt, 'path': path, 'leads': leads, 'window': window,
            'thresholds': thresholds, 'threshold_source': source, 'card': card, 'bare': bare,
            'synthetic': card['database'].upper().startswith('SYNTH'), 'key': model_key(path)}


def run_thresholds(path, ckpt, root, bare):
    """-> (thresholds (9,), source dict(kind 'tuned'|'default', where, path))."""
    thr_path = Path(root) / 'results' / Path(path).parent.name / 'thresholds.json'
    if bare or not thr_path.is_file():
        return np.full(len(CLASSES), 0.5), {'kind': 'default', 'path': str(thr_path)}
    obj = json.loads(thr_path.read_text())
    th = obj.get('thresholds', obj)
    missing = [c for c in CLASSES if c not in th]
    if missing:
        raise SystemExit(f'{thr_path} has no threshold for {missing}; rerun predict.py')
    return (np.array([float(th[c]) for c in CLASSES]),
            {'kind': 'tuned', 'where': obj.get('tuned_on', 'validation'), 'path': str(thr_path)})


def model_card(path, ckpt, root, bare):
    """What the page says about a model: from the checkpoint and results/<run>/."""
    args = ckpt.get('args') or {}
    run = Path(path).parent.name
    database = utils.database_name(args['data_dir']) if args.get('data_dir') else (
        run.split('-')[0] if not bare else '?')
    folds = ckpt.get('folds') or {}
    card = {'run': run, 'database': database, 'leads': list(ckpt['leads']),
            'arch': ckpt.get('arch', '?'), 'epoch': ckpt.get('epoch'),
            'best_epoch': ckpt.get('best_epoch'), 'window': ckpt.get('window'),
            'test_fold': folds.get('test'), 'commit': ckpt.get('commit'), 'bare': bare,
            'data_dir': args.get('data_dir'), 'train_folds': folds.get('train'),
            'seed': args.get('seed', 42), 'macro': None}
    metrics = Path(root) / 'results' / run / 'metrics.csv'
    if not bare and metrics.is_file():
        import pandas as pd
        m = pd.read_csv(metrics, index_col='class')
        if 'macro' in m.index:
            row = m.loc['macro']
            card['macro'] = {k: (float(row[k]), float(row[f'{k}_lo']), float(row[f'{k}_hi']))
                             for k in ('auc', 'f1')}
    return card


def threshold_origin(where, lang):
    """thresholds.json's 'tuned_on' ('validation fold [4]', as predict.py and
    baselines.py write it) in a language; any other text as it is."""
    m = re.fullmatch(r'validation fold \[?([\d, ]+)\]?', where.strip())
    return t(lang, 'val_fold', folds=folds_text(re.findall(r'\d+', m[1]))) if m else where


def folds_text(folds):
    """[7] -> '7', [1, 2] -> '1, 2', None -> '?'."""
    if folds is None or folds == []:
        return '?'
    return ', '.join(map(str, folds)) if isinstance(folds, (list, tuple)) else str(folds)


def card_lines(card, lang):
    """The model card as (label, value) pairs in a language."""
    def ci(k):
        if not card['macro']:
            return t(lang, 'card_not_evaluated')
        v, lo, hi = card['macro'][k]
        return f'{v:.3f} ({lo:.3f}–{hi:.3f})'
    th = card['thresholds']
    thr = t(lang, 'thr_tuned', where=threshold_origin(th['where'], lang), path=th['path']) \
        if th['kind'] == 'tuned' else t(lang, 'thr_default')
    leads = utils.leads_tag(card['leads'])
    epochs = '?' if card['epoch'] is None else f"{card['epoch']} ({card['best_epoch']})"
    window = '?' if not card['window'] else f"{card['window']} ({card['window'] / FS:g} s)"
    return [(t(lang, 'card_database'), card['database']),
            (t(lang, 'card_leads'), t(lang, 'leads_all') if leads == 'all' else leads),
            (t(lang, 'card_arch'), card['arch']), (t(lang, 'card_epochs'), epochs),
            (t(lang, 'card_window'), window),
            (t(lang, 'card_test'), folds_text(card['test_fold'])),
            (t(lang, 'card_auc'), ci('auc')), (t(lang, 'card_f1'), ci('f1')),
            (t(lang, 'card_thresholds'), thr)]


# --------------------------------------------------------------------------
# Uploads.

def safe_name(name):
    """A browser's file name -> a plain file name, or None. Folders ('../',
    'C:\\'), and characters outside [A-Za-z0-9._+-] are dropped, so nothing
    from the browser chooses where a file is written."""
    base = str(name).replace('\\', '/').split('/')[-1]
    base = UNSAFE.sub('_', base).lstrip('.')[:128]
    return base or None


def _size(n):
    return f'{n / 2 ** 20:.1f} MB' if n >= 2 ** 20 else f'{n / 1024:.0f} kB'


def _unzip(name, data, problems):
    """Members of a zip -> [(name, bytes)]; folders are flattened, AppleDouble
    '._' files and __MACOSX/ are skipped, and sizes are checked before reading."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        problems.append((name, f'not a readable .zip ({e})'))
        return []
    out, total = [], 0
    for info in zf.infolist():
        member = PurePosixPath(info.filename.replace('\\', '/'))
        if info.is_dir() or '__MACOSX' in member.parts or member.name.startswith('._'):
            continue
        total += info.file_size
        if info.file_size > MAX_FILE_BYTES or total > MAX_ZIP_BYTES:
            problems.append((f'{name}/{member}', f'over the size limit ({_size(MAX_FILE_BYTES)} '
                                                 f'a file, {_size(MAX_ZIP_BYTES)} a zip)'))
            continue
        try:
            out.append((str(member), zf.read(info)))
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            problems.append((f'{name}/{member}', f'corrupt member ({e})'))
    return out


def stage_files(files, folder):
    """[(browser name, bytes)] -> (staged {safe name: browser name}, problems).
    Zips are unpacked; each file is written into `folder` under its safe name."""
    problems, flat = [], []
    for name, data in files:
        if len(data) > MAX_FILE_BYTES:
            problems.append((name, f'{_size(len(data))} is over the size limit of '
                                   f'{_size(MAX_FILE_BYTES)} a file'))
        elif str(name).lower().endswith('.zip'):
            flat += _unzip(name, data, problems)
        else:
            flat.append((name, data))
    staged = {}
    for name, data in flat:
        safe = safe_name(name)
        if safe is None:
            problems.append((name, 'not a usable file name'))
        elif safe in staged:
            problems.append((name, f'a second file named {safe} in this upload; upload '
                                   'records with the same name separately'))
        else:
            (Path(folder) / safe).write_bytes(data)
            staged[safe] = name
    return staged, problems


def header_files(text):
    """Signal-file names a WFDB header gives (first field of each signal line)."""
    lines = [ln.strip() for ln in text.splitlines()
             if ln.strip() and not ln.lstrip().startswith('#')]
    try:
        nsig = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return []
    return list(dict.fromkeys(ln.split()[0] for ln in lines[1:nsig + 1]))


def pair_records(folder, staged):
    """-> (record paths, problems). Records are paired by the signal-file names
    each header gives, not by basenames; a .mat no header names is taken as
    an original CPSC2018 .mat; any other file no header names is reported."""
    folder = Path(folder)
    records, problems, used = [], [], set()
    for safe in staged:
        if not safe.lower().endswith('.hea'):
            continue
        try:
            names = header_files((folder / safe).read_text(errors='replace'))
        except OSError as e:
            problems.append((staged[safe], f'unreadable header ({e})'))
            continue
        used.update(names)
        missing = [n for n in names if n not in staged]
        if missing:
            problems.append((staged[safe], f"signal file {', '.join(missing)} named by the "
                                           'header is missing from the upload'))
            continue
        records.append(folder / safe)
    headers = {Path(s).stem for s in staged if s.lower().endswith('.hea')}
    for safe, original in staged.items():
        low = safe.lower()
        if safe in used or low.endswith('.hea'):
            continue
        if Path(safe).stem in headers:  # its header is unreadable: reported once, there
            continue
        if low.endswith('.mat'):
            records.append(folder / safe)
        elif not low.endswith(('.atr', '.json', '.txt', '.csv')):  # annotations, notes
            problems.append((original, 'no .hea header in the upload names this file; '
                                       'upload the header with it'))
    return records, problems


# The display (printout, interactive view, QRS detector) shows the model's
# window, and at least 10 s (a printout) when the record has them.
DISPLAY_MIN = 10 * FS


def read_prepared(path, leads, window):
    """The ONE place the app reads a record: records.read_record and
    records.prepare, as every script (any rate, lead order, lead-name case or
    alias; limb leads derived) -> dict(rec (records.Record), x (len(leads),
    window) float32 model input, quality, display (n, k) mV at 500 Hz of the
    standard leads the record gives, display_leads, length, offset)."""
    import records
    rec = records.read_record(path)
    prep = records.prepare(rec, leads, window)
    total = records.length_at_fs(rec)
    shown = [lead for lead in LEADS if lead not in records.missing_leads(rec, LEADS)]
    n = min(total, max(window, DISPLAY_MIN))
    display = records.prepare(rec, shown, n).x.T
    length = min(total, window)
    return {'rec': rec, 'x': np.ascontiguousarray(prep.x), 'quality': str(prep.quality),
            'display': np.ascontiguousarray(display), 'display_leads': shown,
            'length': length, 'offset': n - length, 'total': total}


def _record(r, name, source):
    rec = r['rec']
    return {'name': name, 'signal': r['display'], 'leads': r['display_leads'],
            'fs': float(rec.fs), 'age': rec.age, 'sex': rec.sex or 'Unknown',
            'dx': [str(c) for c in rec.dx], 'x': r['x'], 'quality': r['quality'],
            'length': r['length'], 'offset': r['offset'], 'seconds': r['total'] / FS,
            'source': source, 'id': hashlib.sha256(r['x'].tobytes()).hexdigest()[:16],
            'device': dict(getattr(rec, 'device_measurements', None) or {})}


def read_records(paths, leads, window, staged=None):
    """Record paths -> (records, problems); a bad record is one problem line."""
    from records import RecordError
    out, problems = [], []
    for path in paths:
        label = (staged or {}).get(Path(path).name, Path(path).name)
        try:
            r = read_prepared(path, leads, window)
        except RecordError as e:
            problems.append((label, e.reason))
            continue
        except Exception as e:  # noqa: BLE001 (a damaged file must not stop the batch)
            problems.append((label, f'unreadable ({type(e).__name__}: {e})'))
            continue
        out.append(_record(r, safe_name(r['rec'].name or Path(path).stem), label))
    return out, problems


def load_uploads(files, leads, window):
    """[(browser name, bytes)] -> (records, problems [(file, reason)]). The files
    live in a temporary folder only while they are read."""
    with tempfile.TemporaryDirectory(prefix='ecg-upload-') as tmp:
        staged, problems = stage_files(files, tmp)
        paths, more = pair_records(tmp, staged)
        records, bad = read_records(paths, leads, window, staged)
    return records, problems + more + bad


def example_record(cls, leads, window, seed=2024):
    """A synthetic record of one class (synthetic.py), written and read back as
    an upload would be, so examples take the same path as real records."""
    import synthetic
    i = CLASSES.index(cls)
    rec = synthetic.make_record(seed, i, duration=max(10.0, min(window / FS, 30.0)),
                                classes=[cls])
    name = f'example-{cls}'
    with tempfile.TemporaryDirectory(prefix='ecg-example-') as tmp:
        synthetic.write_record(rec, tmp, name)
        records, problems = read_records([Path(tmp) / f'{name}.hea'], leads, window)
    if problems:
        raise RuntimeError(f'synthetic example {cls} did not read back: {problems}')
    return records[0]


# --------------------------------------------------------------------------
# Diagnosis and measurements.

def score(info, xs):
    """Records (list of (leads, window)) -> probabilities (n, 9), one batch."""
    import torch
    x = torch.from_numpy(np.stack(xs))
    with torch.inference_mode():
        return torch.sigmoid(info['model'](x).float()).numpy()


def predicted(prob, thresholds):
    return [c for c, p, th in zip(CLASSES, prob, thresholds) if p >= th]


def decision_table(prob, thresholds, lang):
    """One row per class, sorted by probability: name in words, probability,
    threshold, decision."""
    import pandas as pd
    rows = [{t(lang, 'col_class'): t(lang, f'class_{c}'), 'code': c,
             t(lang, 'col_probability'): float(p), t(lang, 'col_threshold'): float(th),
             t(lang, 'col_decision'): t(lang, 'present' if p >= th else 'absent')}
            for c, p, th in zip(CLASSES, prob, thresholds)]
    return pd.DataFrame(rows).sort_values(t(lang, 'col_probability'), ascending=False,
                                          kind='stable').reset_index(drop=True)


def diagnoses_text(prob, thresholds, lang):
    names = [t(lang, f'class_{c}') for c in predicted(prob, thresholds)]
    return ('، ' if lang == 'ar' else ', ').join(names) or t(lang, 'none_above')


def measure(signal, fs=FS, leads=None, device=None):
    """Heart rate and RR statistics from the project's multi-lead QRS detector
    -> dict, or None with fewer than 2 beats. 'global' holds measure.py's
    figures (PR, QRS, QT, QTc, axes; signal (n, leads) with names `leads`,
    default the 12 standard leads) and 'device' the cart's values from the
    file (records.Record.device_measurements), {} when it has none."""
    from QRSDetectorOffline import detect_multilead

    import measure as global_measure
    try:
        peaks, _ = detect_multilead(np.asarray(signal, dtype=np.float64), fs)
    except ValueError:
        return None
    if len(peaks) < 2:
        return None
    rr = np.diff(peaks) / fs * 1000.0
    leads = list(leads) if leads is not None else LEADS[:np.shape(signal)[1]]
    return {'beats': int(len(peaks)), 'hr_bpm': float(60000.0 / rr.mean()),
            'rr_mean_ms': float(rr.mean()), 'rr_sd_ms': float(rr.std(ddof=1)) if len(rr) > 1
            else 0.0, 'rr_min_ms': float(rr.min()), 'rr_max_ms': float(rr.max()),
            'peaks': peaks,
            'global': global_measure.measure(np.asarray(signal, dtype=np.float64).T, fs, leads),
            'device': dict(device or {})}


# measure.py key, app_text key, the cart's key (records.Record.device_measurements)
GLOBAL_ROWS = [('pr_ms', 'meas_pr', 'pr_ms'), ('qrs_ms', 'meas_qrs', 'qrs_ms'),
               ('qt_ms', 'meas_qt', 'qt_ms'), ('qtc_bazett_ms', 'meas_qtc_bazett', 'qtc_ms'),
               ('qtc_fridericia_ms', 'meas_qtc_fridericia', None)]


def global_rows(meas, lang):
    """[(label, ours, cart)] strings for the measurements table: intervals,
    QTc and the three axes; the cart's column is '' where the file has none."""
    g, dev = meas.get('global') or {}, meas.get('device') or {}

    def fmt(v):
        return t(lang, 'meas_empty') if v is None else f'{v:.0f}'
    rows = [(t(lang, label), fmt(g.get(key)), '' if ck not in dev else f'{dev[ck]:.0f}')
            for key, label, ck in GLOBAL_ROWS]
    axes = ' / '.join('—' if g.get(k) is None else f'{g[k]:.0f}'
                      for k in ('p_axis', 'qrs_axis', 't_axis'))
    cart = ' / '.join('—' if k not in dev else f'{dev[k]:.0f}'
                      for k in ('p_axis', 'qrs_axis', 't_axis'))
    rows.append((t(lang, 'meas_axes'), axes, cart if cart != '— / — / —' else ''))
    return rows


def criteria_lines(meas, lang):
    """Plain-words lines where a measurement meets a class's definition (PR >
    200 ms: IAVB; QRS >= 120 ms: bundle branch block)."""
    g = (meas or {}).get('global') or {}
    out = []
    if g.get('pr_ms') is not None and g['pr_ms'] > 200:
        out.append(t(lang, 'crit_iavb', pr=ltr(f"{g['pr_ms']:.0f}", lang)))
    if g.get('qrs_ms') is not None and g['qrs_ms'] >= 120:
        out.append(t(lang, 'crit_bbb', qrs=ltr(f"{g['qrs_ms']:.0f}", lang)))
    return out


def scores_frame(records, probs, thresholds):
    """Per record: name, source file, score_<class>, pred_<class>, diagnoses."""
    import pandas as pd
    rows = []
    for r, p in zip(records, probs):
        row = {'record': r['name'], 'file': r['source'], 'fs': r['fs'],
               'seconds': round(r['seconds'], 3)}
        row.update({f'score_{c}': float(v) for c, v in zip(CLASSES, p)})
        row.update({f'threshold_{c}': float(v) for c, v in zip(CLASSES, thresholds)})
        row['diagnoses'] = ';'.join(predicted(p, thresholds))
        rows.append(row)
    return pd.DataFrame(rows)


def scores_json(records, probs, thresholds, card):
    out = {'model': {k: card[k] for k in ('run', 'database', 'arch', 'leads')},
           'thresholds': dict(zip(CLASSES, map(float, thresholds))), 'records': []}
    for r, p in zip(records, probs):
        out['records'].append({'record': r['name'], 'file': r['source'],
                               'scores': dict(zip(CLASSES, map(float, p))),
                               'diagnoses': predicted(p, thresholds)})
    return json.dumps(out, indent=1)


# --------------------------------------------------------------------------
# Explanation.

def background(info, root='.', n=APP_BACKGROUND):
    """(tensor (m, leads, window), dict(kind, n, db, expected)): n training
    records of the model's own run, drawn as shap_values.draw_background does
    (seeded), or a flat line when the training data is not on this machine;
    `expected` is the mean logit over them, E[f] of the additivity check
    (computed here once per model: m forward passes)."""
    x, meta = _background(info, root, n)
    meta['expected'] = mean_logits(info, x)
    return x, meta


def mean_logits(info, x, chunk=16):
    import torch
    with torch.inference_mode():
        out = torch.cat([info['model'](x[i:i + chunk]).float() for i in range(0, len(x), chunk)])
    return out.double().mean(0).numpy()


def _background(info, root, n):
    import torch
    card = info['card']
    db = card['data_dir'] or card['database']
    if card['data_dir'] and card['train_folds']:
        from types import SimpleNamespace

        import shap_values
        data_dir = Path(card['data_dir'])
        if not data_dir.is_absolute():
            data_dir = Path(root) / data_dir
        try:
            args = SimpleNamespace(data_dir=str(data_dir), background=n, seed=card['seed'])
            x, ids = shap_values.draw_background(args, info['leads'], info['window'],
                                                 card['train_folds'])
            return x, {'kind': 'train', 'n': len(ids), 'db': card['database']}
        except (SystemExit, OSError, KeyError, ValueError):
            pass  # no cache of that dataset here
    return (torch.zeros(1, len(info['leads']), info['window']),
            {'kind': 'flat', 'n': 1, 'db': db})


def expected_gradients(f, x, bg, classes, nsamples, rseed, batch=SHAP_BATCH, progress=None):
    """SHAP values of f's outputs `classes` at x (1, leads, window) -> (k, leads,
    window) float32: shap.GradientExplainer's estimate exactly (same seeded draws
    of a background record and a point on the path, np.random.seed(rseed) then
    choice/uniform per sample), but every class from one forward pass per batch
    of interpolated inputs (one backward per class) instead of one forward and
    backward per class and sample batch."""
    import torch
    rs = np.random.RandomState(rseed)
    draws = [(rs.choice(bg.shape[0]), rs.uniform()) for _ in range(nsamples)]
    acc = np.zeros((len(classes),) + tuple(x.shape[1:]))
    done = 0
    for b in range(0, nsamples, batch):
        chunk = draws[b:b + batch]
        idx = torch.tensor([d[0] for d in chunk])
        tt = torch.tensor([d[1] for d in chunk], dtype=torch.float32)[:, None, None]
        inp = (tt * x + (1 - tt) * bg[idx]).detach().requires_grad_(True)
        delta = (x - bg[idx]).numpy().astype(np.float64)
        with torch.enable_grad():
            out = f(inp)
            for j, c in enumerate(classes):
                g, = torch.autograd.grad(out[:, c].sum(), inp,
                                         retain_graph=j < len(classes) - 1)
                acc[j] += (g.double().numpy() * delta).sum(0)
        done += len(chunk)
        if progress:
            progress(done, nsamples)
    return (acc / nsamples).astype(np.float32)


def explained_classes(margins):
    """Logit minus the threshold's logit, per class -> the classes explained:
    the predicted ones (margin >= 0), largest first, at least the top one."""
    order = np.argsort(-np.asarray(margins), kind='stable')
    return [int(c) for c in order[:max(1, int((np.asarray(margins) >= 0).sum()))]]


def logit_margins(prob, thresholds):
    p = np.clip(np.asarray(prob, dtype=np.float64), 1e-6, 1 - 1e-6)
    th = np.clip(np.asarray(thresholds, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p)) - np.log(th / (1 - th))


def explain(info, record, nsamples=APP_NSAMPLES, root='.', bg=None, progress=None):
    """SHAP of a record's predicted classes (at least the most likely one) ->
    dict(classes, values (k, leads, window), fx, expected, shap_sum, rel_error,
    seconds, background, nsamples)."""
    import torch

    import shap_values
    t0 = time.perf_counter()
    device = torch.device('cpu')
    wrapper = shap_values.explained_model(info['model'], info['thresholds'], device, 'fp32',
                                          chunk=16)
    bg_x, bg_info = bg if bg is not None else background(info, root)
    x = torch.from_numpy(record['x'])[None]
    offset = wrapper.offset.double().numpy()
    with torch.no_grad():
        margins = wrapper(x)[0].double().numpy()
    expected = bg_info['expected'] if 'expected' in bg_info else mean_logits(info, bg_x)
    classes = explained_classes(margins)
    values = expected_gradients(wrapper, x, bg_x, classes, nsamples,
                                shap_values.record_seed(0, record['id']), progress=progress)
    fx = margins[classes] + offset[classes]
    shap_sum = values.reshape(len(classes), -1).sum(-1).astype(np.float64)
    target = fx - expected[classes]
    rel = np.abs(shap_sum - target) / np.maximum(np.abs(target), 1e-8)
    return {'classes': classes, 'values': values, 'fx': fx, 'expected': expected[classes],
            'shap_sum': shap_sum, 'rel_error': rel, 'seconds': time.perf_counter() - t0,
            'background': bg_info, 'nsamples': nsamples}


def lead_shares(values, length):
    """(leads, window) -> share of the positive SHAP mass per lead (sums to 1)."""
    import shap_values
    mass = shap_values.positive_mass(values, length)
    return mass / mass.sum() if mass.sum() > 0 else mass


def record_mask(record, values, leads):
    """Highlight mask in the displayed signal's time: (display leads, n) bool,
    the model's leads filled from shap_values.highlight_mask, others False."""
    import shap_values
    out = np.zeros((len(record['leads']), len(record['signal'])), dtype=bool)
    m = shap_values.highlight_mask(values, record['length'], HIGHLIGHT_PERCENTILE)
    for k, lead in enumerate(leads):
        if lead in record['leads']:
            out[record['leads'].index(lead), record['offset']:record['offset'] + m.shape[1]] = m[k]
    return out


def runs(mask):
    """bool (n,) -> [(start, stop)] of its True runs."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


# --------------------------------------------------------------------------
# Figures.

def title(record, prob, thresholds, lang):
    age = record['age']
    age = f'{float(age):.0f}' if age is not None and np.isfinite(float(age)) else \
        t(lang, 'age_unknown')
    sex = t(lang, f"sex_{record['sex']}") if record['sex'] in ('Male', 'Female') else \
        t(lang, 'sex_Unknown')
    return f"{record['name']} | {age} | {sex} | {diagnoses_text(prob, thresholds, lang)}"


def printout_figure(record, heading, mask=None, color=HIGHLIGHT_COLORS[0], lang='en'):
    """visualize.plot_clinical of the record, titled `heading`, with the True
    runs of `mask` (12, n) shaded in each lead's row; None when the record does
    not give the 12 standard leads."""
    import visualize
    if record['leads'] != LEADS:
        return None
    rec = {'name': record['name'], 'signal': record['signal'], 'fs': FS,
           'fs_orig': record['fs'], 'leads': list(LEADS), 'age': record['age'],
           'sex': record['sex'], 'dx': record['dx']}
    shown = min(len(record['signal']) / FS, visualize.CLINICAL_SECONDS)
    fig = visualize.plot_clinical(
        rec, title=heading, footnote=t(lang, 'grid_note'),
        subtitle=t(lang, 'printout_settings', fs=record['fs'], shown=shown,
                   total=len(record['signal']) / FS, lead=visualize.RHYTHM_LEAD))
    if mask is not None:
        _shade_printout(fig.axes[0], mask, color)
    return fig


def _shade_printout(ax, mask, color):
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    import visualize as v
    top = (len(v.CLINICAL_ROWS) + 1) * v.ROW_MV
    n = min(mask.shape[1], round(v.CLINICAL_SECONDS * FS))
    boxes = []
    for r, row in enumerate(v.CLINICAL_ROWS + [[v.RHYTHM_LEAD]]):
        y0 = top - (r + 1) * v.ROW_MV
        span = v.CLINICAL_SECONDS / len(row)
        for c, lead in enumerate(row):
            a, b = round(c * span * FS), min(round((c + 1) * span * FS), n)
            for s, e in runs(mask[LEADS.index(lead), a:b]):
                boxes.append(Rectangle(((a + s) / FS, y0), (e - s) / FS, v.ROW_MV))
    ax.add_collection(PatchCollection(boxes, facecolor=color, alpha=0.28, lw=0, zorder=2))


def png(fig, dpi=110):
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=dpi, facecolor='white')
    return buf.getvalue()


def _columns(fig, x, y, rows, widths, rtl, size=7.5, step=0.0165, bold_first=False):
    """Rows of cells, each cell its own text object (widths: the columns
    before the last), so that no
    text mixes Arabic words and numbers (matplotlib's bidi would reorder
    them). Columns run right to left when rtl. Returns the y below the rows."""
    for i, row in enumerate(rows):
        pos = x
        for j, cell in enumerate(row):
            fig.text(pos, y, str(cell), fontsize=size, ha='right' if rtl else 'left', va='top',
                     fontweight='bold' if bold_first and i == 0 else 'normal')
            w = widths[j] if j < len(widths) else 0.0
            pos = pos - w if rtl else pos + w
        y -= step
    return y


def report_pdf(record, prob, thresholds, meas, card, lang, printout_png, fmt='pdf'):
    """The one-page A4 report (landscape) -> PDF bytes: the printout, diagnoses
    with probabilities and thresholds, measurements, model card, disclaimer
    (fmt='png' for a preview)."""
    import matplotlib.image as mpimg

    import visualize
    rtl = lang in RTL
    side = (lambda x: 1 - x) if rtl else (lambda x: x)
    ha = 'right' if rtl else 'left'
    fig = visualize.new_figure(11.69, 8.27)
    fig.text(side(0.03), 0.975, t(lang, 'report_title', name=record['name']), fontsize=14,
             fontweight='bold', ha=ha, va='top')
    fig.text(side(0.97), 0.975, t(lang, 'report_generated', when=time.strftime('%Y-%m-%d %H:%M'),
                                  commit=utils.git_commit()),
             fontsize=7, ha='left' if rtl else 'right', va='top', color='#555555')
    ax = fig.add_axes((0.03, 0.34, 0.94, 0.6))
    ax.imshow(mpimg.imread(io.BytesIO(printout_png), format='png'))
    ax.set_axis_off()
    fig.text(side(0.03), 0.325, t(lang, 'diagnosis') + ': ' +
             diagnoses_text(prob, thresholds, lang), fontsize=8.5, fontweight='bold', ha=ha,
             va='top')
    rows = [(t(lang, 'col_class'), t(lang, 'col_probability'), t(lang, 'col_threshold'),
             t(lang, 'col_decision'))]
    for c, p, th in sorted(zip(CLASSES, prob, thresholds), key=lambda z: -z[1]):
        rows.append((t(lang, f'class_{c}'), f'{p:.3f}', f'{th:.3f}',
                     t(lang, 'present' if p >= th else 'absent')))
    _columns(fig, side(0.03), 0.298, rows, (0.2, 0.07, 0.06), rtl, bold_first=True)
    right = [(t(lang, 'measurements'), '')]
    right += [tuple(line.split(': ', 1)) if ': ' in line else (line, '')
              for line in measurement_lines(meas, lang)] \
        if meas is not None else [(t(lang, 'not_measurable'), '')]
    y = _columns(fig, side(0.46), 0.325, right, (0.21,), rtl, bold_first=True)
    _columns(fig, side(0.46), y - 0.008, [(t(lang, 'model_card'), '')] + card_lines(card, lang),
             (0.21,), rtl, bold_first=True)
    fig.text(0.5, 0.02, t(lang, 'disclaimer') + ('  ' + t(lang, 'demo_banner')
             if card['database'].upper().startswith('SYNTH') else ''),
             fontsize=8, ha='center', va='bottom', color='#a00000')
    buf = io.BytesIO()
    meta = {'Title': f"ECG report {record['name']}", 'Subject': record['name'],
            'Creator': 'ecg-diagnosis app.py'} if fmt == 'pdf' else None
    fig.savefig(buf, format=fmt, metadata=meta, dpi=110)
    return buf.getvalue()


def measurement_lines(meas, lang):
    if meas is None:
        return [t(lang, 'not_measurable')]
    lines = [
        f"{t(lang, key)}: {value}" for key, value in (
            ('heart_rate', f"{meas['hr_bpm']:.0f}"), ('rr_mean', f"{meas['rr_mean_ms']:.0f}"),
            ('rr_sd', f"{meas['rr_sd_ms']:.0f}"),
            ('rr_range', f"{meas['rr_min_ms']:.0f}–{meas['rr_max_ms']:.0f}"),
            ('beats', str(meas['beats'])))]
    for label, ours, cart in global_rows(meas, lang) if meas.get('global') else []:
        lines.append(f"{label}: {ours}" + (f"  ({t(lang, 'col_cart')} {cart})" if cart else ''))
    return lines + criteria_lines(meas, lang)


def ltr(text, lang='ar'):
    """Numbers, ranges and paths inside right-to-left text, wrapped in a
    left-to-right isolate (U+2066 ... U+2069): otherwise the Unicode bidi
    algorithm shows '762–1226' as '1226–762' after Arabic words. Browsers and
    matplotlib 3.11 both honour it."""
    return f'\u2066{text}\u2069' if lang in RTL else str(text)

"""What the web app (app.py) computes, without Streamlit: models and their cards,
uploads, diagnosis, measurements, explanation, figures and the PDF report.
app.py only draws the page; tests and bench.py call these functions directly.

    from web import clinic
    run = runs.load_run('models/SYNTH-all-s42-f7/best.pt')
    records, problems = uploads.load_uploads([('A0001.hea', b'...'), ('A0001.mat', b'...')],
                                             run.leads, run.window)   # records.Reading
    scores = clinic.score(run, [r.x for r in records])
    table = clinic.decision_table(scores[0], run.thresholds, run.classes, 'en')
    ex = shap_values.explain(run, records[0], nsamples=16)   # SHAP of the predicted classes

Uploads are written, under sanitised names, into a temporary folder that is
removed as soon as the records are read (they are kept in memory only).
"""
import io
import json
import tempfile
import time
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
from matplotlib.collections import PatchCollection
from matplotlib.patches import Rectangle

import measure
import shap_values
import synthetic
import utils
import visualize
from records import FS, LEADS, uploads
from records.measurements import AXES, BY_KEY, CART_BESIDE, DEVICE_KEYS, device_column
from resnet import probabilities
from web.app_text import RTL, t

HIGHLIGHT_PERCENTILE = 95.0
HIGHLIGHT_COLORS = ['#d62728', '#1f77b4', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b',
                    '#e377c2', '#17becf', '#bcbd22']


# --------------------------------------------------------------------------
# Models.

def threshold_origin(tuned_on, lang):
    """Where thresholds were tuned (utils.read_thresholds' fields: split, folds,
    or a text the file gave) in a language: 'validation fold 4'."""
    if tuned_on.get('split') == 'validation':
        return t(lang, 'val_fold', folds=folds_text(tuned_on.get('folds')))
    if tuned_on.get('split'):
        return f"{tuned_on['split']} {folds_text(tuned_on.get('folds'))}"
    return tuned_on.get('text') or '?'


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
    thr = t(lang, 'thr_tuned', where=threshold_origin(th['tuned_on'], lang), path=th['path']) \
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


def example_classes(run):
    """The model's classes that synthetic.py can draw an example of."""
    return [c for c in run.classes if c in synthetic.CPSC_COUNTS]


def example_record(cls, leads, window, seed=2024):
    """A synthetic record of one class (synthetic.py), written and read back as
    an upload would be, so examples take the same path as real records."""
    i = list(synthetic.CPSC_COUNTS).index(cls)  # the record number: one per class
    rec = synthetic.make_record(seed, i, duration=max(10.0, min(window / FS, 30.0)),
                                classes=[cls])
    name = f'example-{cls}'
    with tempfile.TemporaryDirectory(prefix='ecg-example-') as tmp:
        synthetic.write_record(rec, tmp, name)
        records, problems = uploads.read_records([Path(tmp) / f'{name}.hea'], leads, window)
        for r in records:  # the folder goes now: the Records let go of its files first
            r.record.close()
    if problems:
        raise RuntimeError(f'synthetic example {cls} did not read back: {problems}')
    return records[0]


# --------------------------------------------------------------------------
# Diagnosis and measurements.

def score(run, xs):
    """Records (list of (leads, window)) -> probabilities (n, classes), one batch."""
    return probabilities(run.model, np.stack(xs), batch_size=len(xs))


def predicted(prob, thresholds, classes):
    """The classes (a runs.Run's) present by utils.decide."""
    return [c for c, p in zip(classes, utils.decide(prob, thresholds)) if p]


def decision_table(prob, thresholds, classes, lang):
    """One row per class, sorted by probability: name in words, probability,
    threshold, decision."""
    rows = [{t(lang, 'col_class'): t(lang, f'class_{c}'), 'code': c,
             t(lang, 'col_probability'): float(p), t(lang, 'col_threshold'): float(th),
             t(lang, 'col_decision'): t(lang, 'present' if d else 'absent')}
            for c, p, th, d in zip(classes, prob, thresholds, utils.decide(prob, thresholds))]
    return pd.DataFrame(rows).sort_values(t(lang, 'col_probability'), ascending=False,
                                          kind='stable').reset_index(drop=True)


def diagnoses_text(prob, thresholds, classes, lang):
    names = [t(lang, f'class_{c}') for c in predicted(prob, thresholds, classes)]
    return ('، ' if lang == 'ar' else ', ').join(names) or t(lang, 'none_above')


def record_measurements(signal, fs=FS, leads=None, device=None):
    """Heart rate and RR statistics from the project's multi-lead QRS detector
    -> dict, or None with fewer than 2 beats. 'global' holds measure.py's
    figures (PR, QRS, QT, QTc, axes; signal (n, leads) with names `leads`,
    default the 12 standard leads) and 'device' the cart's values from the
    file (records.Record.device_measurements), {} when it has none. The beats
    are measure.py's (one detector run a record: two were half the time of
    an API request's measurements); it finds none where it stops before its
    detector (no usable lead, under 2 s: the detector needs 2 s too)."""
    signal = np.asarray(signal, dtype=np.float64)
    leads = list(leads) if leads is not None else LEADS[:np.shape(signal)[1]]
    glob = measure.measure(signal.T, fs, leads)
    peaks = np.asarray(glob.pop('peaks', []), dtype=np.float64)   # at measure.FS
    if len(peaks) < 2:
        return None
    peaks = np.rint(peaks * (fs / measure.FS)).astype(np.int64)   # `signal`'s samples
    rr = np.diff(peaks) / fs * 1000.0
    return {'beats': int(len(peaks)), 'hr_bpm': float(60000.0 / rr.mean()),
            'rr_mean_ms': float(rr.mean()), 'rr_sd_ms': float(rr.std(ddof=1)) if len(rr) > 1
            else 0.0, 'rr_min_ms': float(rr.min()), 'rr_max_ms': float(rr.max()),
            'peaks': peaks, 'global': glob, 'device': dict(device or {})}


# (measure.py key, app_text label, the cart's key or None) of every interval
# and QTc we measure, beside the cart's figure for it (Record.device_measurements).
GLOBAL_ROWS = [(k, 'meas_' + k.removesuffix('_ms'), CART_BESIDE.get(k))
               for k in measure.KEYS if BY_KEY[k].unit == 'ms']


def global_rows(meas, lang):
    """[(label, ours, cart)] strings for the measurements table: intervals,
    QTc and the three axes; the cart's column is '' where the file has none."""
    g, dev = meas.get('global') or {}, meas.get('device') or {}

    def fmt(v):
        return t(lang, 'meas_empty') if v is None else f'{v:.0f}'
    rows = [(t(lang, label), fmt(g.get(key)), '' if ck not in dev else f'{dev[ck]:.0f}')
            for key, label, ck in GLOBAL_ROWS]
    axes = ' / '.join('—' if g.get(k) is None else f'{g[k]:.0f}' for k in AXES)
    cart = ' / '.join('—' if k not in dev else f'{dev[k]:.0f}' for k in AXES)
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


def scores_frame(records, probs, thresholds, classes):
    """Per record: name, source file, score_<class>, pred_<class>, diagnoses."""
    rows = []
    for r, p in zip(records, probs):
        row = {'record': r.name, 'file': r.source, 'fs': r.record.fs,
               'seconds': round(r.seconds, 3)}
        row.update({f'score_{c}': float(v) for c, v in zip(classes, p)})
        row.update({f'threshold_{c}': float(v) for c, v in zip(classes, thresholds)})
        row['diagnoses'] = ';'.join(predicted(p, thresholds, classes))
        meas = r.record.device_measurements  # the cart's, as predict.py writes them
        row.update({device_column(k): meas.get(k) for k in DEVICE_KEYS})
        row['device_statements'] = ' | '.join(r.record.device_statements)
        rows.append(row)
    return pd.DataFrame(rows)


def scores_json(records, probs, thresholds, classes, card):
    out = {'model': {k: card[k] for k in ('run', 'database', 'arch', 'leads')},
           'thresholds': dict(zip(classes, map(float, thresholds))), 'records': []}
    for r, p in zip(records, probs):
        out['records'].append({'record': r.name, 'file': r.source,
                               'scores': dict(zip(classes, map(float, p))),
                               'diagnoses': predicted(p, thresholds, classes),
                               # the cart's own reading, apart from ours
                               'device': {'measurements': r.record.device_measurements,
                                          'statements': r.record.device_statements}})
    return json.dumps(out, indent=1)


def lead_shares(values, length):
    """(leads, window) -> share of the positive SHAP mass per lead (sums to 1)."""
    mass = shap_values.positive_mass(values, length)
    return mass / mass.sum() if mass.sum() > 0 else mass


def record_mask(reading, values, leads):
    """Highlight mask in the displayed signal's time: (display leads, n) bool,
    the model's leads filled from shap_values.highlight_mask, others False."""
    out = np.zeros((len(reading.leads), len(reading.signal)), dtype=bool)
    m = shap_values.highlight_mask(values, reading.length, HIGHLIGHT_PERCENTILE)
    for k, lead in enumerate(leads):
        if lead in reading.leads:
            out[reading.leads.index(lead), reading.offset:reading.offset + m.shape[1]] = m[k]
    return out


def runs(mask):
    """bool (n,) -> [(start, stop)] of its True runs."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


# --------------------------------------------------------------------------
# Figures.

def title(reading, prob, thresholds, classes, lang):
    age, sex = reading.record.age, reading.record.sex
    age = f'{float(age):.0f}' if age is not None and np.isfinite(float(age)) else \
        t(lang, 'age_unknown')
    sex = t(lang, f'sex_{sex}') if sex in ('Male', 'Female') else t(lang, 'sex_Unknown')
    return f'{reading.name} | {age} | {sex} | {diagnoses_text(prob, thresholds, classes, lang)}'


def printout_figure(reading, heading, mask=None, color=HIGHLIGHT_COLORS[0], lang='en'):
    """visualize.plot_clinical of the record, titled `heading`, with the True
    runs of `mask` (12, n) shaded in each lead's row; None when the record does
    not give the 12 standard leads."""
    if reading.leads != LEADS:
        return None
    shown = min(len(reading.signal) / FS, visualize.CLINICAL_SECONDS)
    fig = visualize.plot_clinical(
        reading, title=heading, footnote=t(lang, 'grid_note'),
        subtitle=t(lang, 'printout_settings', fs=reading.record.fs, shown=shown,
                   total=len(reading.signal) / FS, lead=visualize.RHYTHM_LEAD))
    if mask is not None:
        _shade_printout(fig.axes[0], mask, color)
    return fig


def _shade_printout(ax, mask, color):

    top = (len(visualize.CLINICAL_ROWS) + 1) * visualize.ROW_MV
    n = min(mask.shape[1], round(visualize.CLINICAL_SECONDS * FS))
    boxes = []
    for r, row in enumerate(visualize.CLINICAL_ROWS + [[visualize.RHYTHM_LEAD]]):
        y0 = top - (r + 1) * visualize.ROW_MV
        span = visualize.CLINICAL_SECONDS / len(row)
        for c, lead in enumerate(row):
            a, b = round(c * span * FS), min(round((c + 1) * span * FS), n)
            for s, e in runs(mask[LEADS.index(lead), a:b]):
                boxes.append(Rectangle(((a + s) / FS, y0), (e - s) / FS, visualize.ROW_MV))
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


def report_pdf(reading, prob, thresholds, classes, meas, card, lang, printout_png, fmt='pdf'):
    """The one-page A4 report (landscape) -> PDF bytes: the printout, diagnoses
    with probabilities and thresholds, measurements, model card, disclaimer
    (fmt='png' for a preview)."""

    rtl = lang in RTL
    side = (lambda x: 1 - x) if rtl else (lambda x: x)
    ha = 'right' if rtl else 'left'
    fig = visualize.new_figure(11.69, 8.27)
    fig.text(side(0.03), 0.975, t(lang, 'report_title', name=reading.name), fontsize=14,
             fontweight='bold', ha=ha, va='top')
    fig.text(side(0.97), 0.975, t(lang, 'report_generated', when=time.strftime('%Y-%m-%d %H:%M'),
                                  commit=utils.git_commit()),
             fontsize=7, ha='left' if rtl else 'right', va='top', color='#555555')
    ax = fig.add_axes((0.03, 0.34, 0.94, 0.6))
    ax.imshow(mpimg.imread(io.BytesIO(printout_png), format='png'))
    ax.set_axis_off()
    fig.text(side(0.03), 0.325, t(lang, 'diagnosis') + ': ' +
             diagnoses_text(prob, thresholds, classes, lang), fontsize=8.5, fontweight='bold',
             ha=ha, va='top')
    rows = [(t(lang, 'col_class'), t(lang, 'col_probability'), t(lang, 'col_threshold'),
             t(lang, 'col_decision'))]
    decided = zip(classes, prob, thresholds, utils.decide(prob, thresholds))
    for c, p, th, d in sorted(decided, key=lambda z: -z[1]):
        rows.append((t(lang, f'class_{c}'), f'{p:.3f}', f'{th:.3f}',
                     t(lang, 'present' if d else 'absent')))
    _columns(fig, side(0.03), 0.298, rows, (0.2, 0.07, 0.06), rtl, bold_first=True)
    right = [(t(lang, 'measurements'), '')]
    right += [tuple(line.split(': ', 1)) if ': ' in line else (line, '')
              for line in measurement_lines(meas, lang)] \
        if meas is not None else [(t(lang, 'not_measurable'), '')]
    y = _columns(fig, side(0.46), 0.325, right, (0.21,), rtl, bold_first=True)
    cart = device_rows(reading, lang)
    if cart:  # the cart's reading: a block of its own under the table, labelled the device's
        _columns(fig, side(0.03), 0.125, cart, (0.1,), rtl, bold_first=True)
    _columns(fig, side(0.46), y - 0.008, [(t(lang, 'model_card'), '')] + card_lines(card, lang),
             (0.21,), rtl, bold_first=True)
    fig.text(0.5, 0.02, t(lang, 'disclaimer') + ('  ' + t(lang, 'demo_banner')
             if card['database'].upper().startswith('SYNTH') else ''),
             fontsize=8, ha='center', va='bottom', color='#a00000')
    buf = io.BytesIO()
    meta = {'Title': f'ECG report {reading.name}', 'Subject': reading.name,
            'Creator': 'ecg-diagnosis app.py'} if fmt == 'pdf' else None
    fig.savefig(buf, format=fmt, metadata=meta, dpi=110)
    return buf.getvalue()


# The cart's measurement keys (records.measurements.DEVICE_KEYS) -> their app_text label.
DEVICE_TEXT = {k: f'dev_{k}' for k in DEVICE_KEYS}


def device_lines(reading, lang):
    """'label: value' lines of the cart's own reading (records.formats), then
    its statements; [] when the file carries none. The device's, never ours."""
    meas = reading.record.device_measurements
    lines = [f"{t(lang, text)}: {ltr(f'{meas[k]:g}', lang)}" for k, text in DEVICE_TEXT.items()
             if k in meas]
    return lines + [f"{t(lang, 'cart_statements')}: {s}"
                    for s in reading.record.device_statements]


def device_rows(reading, lang, statements=2, width=70):
    """The cart's reading for the PDF, compact: a title row, one row of its
    measurements ('HR 41 · PR 151 · ...'), its first statements (cut to
    `width` characters); [] when the file carries none."""
    meas = reading.record.device_measurements
    parts = [f'{BY_KEY[k].abbrev} {meas[k]:g}' for k in DEVICE_KEYS
             if k not in AXES and k in meas]
    axes = [meas.get(k) for k in DEVICE_KEYS if k in AXES]
    if any(a is not None for a in axes):
        parts.append('P/QRS/T ' + '/'.join('?' if a is None else f'{a:g}' for a in axes) + '°')
    said = [s if len(s) <= width else s[:width - 1] + '…'
            for s in reading.record.device_statements[:statements]]
    if not parts and not said:
        return []
    rows = [(t(lang, 'cart_reading'), '')]
    if parts:
        rows.append((t(lang, 'cart_measures'), ' · '.join(parts)))
    rows += [(t(lang, 'cart_statements'), s) for s in said]
    return rows


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

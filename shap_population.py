"""SHAP at the population level: per-lead contributions with shap's own plots,
and beat-aligned attribution profiles that show where each diagnosis lives.

shap_values.py calls write_population_outputs() for the records it explained,
so `python shap_values.py ...` (and `--plots-only`, from the cache) writes,
next to its other outputs in shap/<run>/:

  records/<id>_<class>_waterfall.png
                 shap.plots.waterfall: the twelve leads' contributions (each
                 lead's SHAP values summed over time) from E[f] to f(x)
  summary_<class>.png
                 shap.plots.beeswarm of the per-lead contributions over every
                 explanation of the class, coloured by the lead's RMS amplitude
  profile_<class>.png
                 the median beat (-400..+600 ms around the R peak) of the four
                 leads with the most positive SHAP, the mean positive SHAP
                 density shaded under it, the P, QRS, ST and T regions marked
  profiles.npz   the profiles, median beats and regions (numpy, no pickles)
  profile_peaks.csv
                 per class: the profile's mean per region, the region where it
                 is highest, where the generator puts the criterion
  lead_contributions.csv
                 per explanation: f(x), E[f], the twelve contributions and the
                 Monte Carlo residual f(x) - E[f] - their sum

Every plot is a function of arrays that returns a matplotlib figure (the app
can draw them too):

    from shap_population import lead_contributions, plot_waterfall, plot_profile
    contrib = lead_contributions(values, length)          # (classes, leads)
    fig = plot_waterfall(contrib[0], expected, fx, leads, lead_rms(x, length))

Profiles. A record's positive SHAP values are divided by their mean over its
leads and real samples (1 = an even spread), cut into windows from 400 ms
before to 600 ms after each R peak, and averaged over the beats of the record,
then over records (each record counts once, however long). R peaks come from
the record's .atr beat annotations where it has one (the synthetic data and
MIT-BIH style databases), else from QRSDetectorOffline.detect_multilead.
Premature beats (PAC, PVC) are aligned on their ectopic beats (A and V in the
.atr, or the beats measure.label_beats finds premature / of another shape
than the median beat: measure.py's rule), AF on every beat, the other classes
on the normal beats. The QRS of the median beat is delineated by
measure.qrs_bounds (its spatial velocity, notches bridged), the rule of
measure.py's QRS duration, so a profile's QRS region is the QRS measure.py
measures: P (with the PR segment) before its onset, ST 100 ms from its end
(the J point), T after. AF, a rhythm, is read from the RR context: its
profile also reports the share of the positive mass that falls between QRS
complexes.
"""
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.ndimage import uniform_filter1d

import measure
import utils
from QRSDetectorOffline import detect_multilead
from records import FS, RecordError, read_beats, read_record
from utils import CLASSES

BEFORE_MS, AFTER_MS = 400, 600        # the beat window around each R peak
REGIONS = ('P', 'QRS', 'ST', 'T')
ST_MS = 100                           # J point to the start of the T region
ECTOPIC = {'PAC': 'A', 'PVC': 'V'}    # classes aligned on their ectopic beats
# Where synthetic.py puts each criterion (PR interval, QRS, ST segment, the
# ectopic beat: its premature P for PAC, its wide QRS for PVC). SNR and AF
# have no such region (AF: irregular RR and f waves, see between_qrs_share).
CRITERION_REGION = {'IAVB': 'P', 'LBBB': 'QRS', 'RBBB': 'QRS', 'PAC': 'P', 'PVC': 'QRS',
                    'STD': 'ST', 'STE': 'ST'}
REGION_COLOURS = {'P': 'tab:green', 'QRS': 'tab:blue', 'ST': 'tab:orange', 'T': 'tab:purple'}
# The QRS region (ms from the R peak) where the median beat's slope never
# settles (measure.qrs_bounds finds no QRS): a normal QRS around its R peak.
NOMINAL_QRS_MS = (-40.0, 60.0)


# --------------------------------------------------------------------------
# Per-lead contributions: waterfall and summary.

def lead_contributions(values, length):
    """(..., leads, window) -> (..., leads) float64: SHAP summed over the
    record's real samples, each lead's contribution to the explained output.
    The front padding is excluded (its input is 0 in every record, so its
    values are ~0 anyway)."""
    return np.asarray(values)[..., values.shape[-1] - length:].sum(-1, dtype=np.float64)


def lead_rms(x, length):
    """(leads, window) -> (leads,) RMS amplitude in mV of the real samples,
    about each lead's median (baseline offsets do not count)."""
    real = np.asarray(x, dtype=np.float64)[:, x.shape[-1] - length:]
    real = real - np.median(real, axis=-1, keepdims=True)
    return np.sqrt((real ** 2).mean(-1))


def lead_explanation(contrib, expected, leads, features=None):
    """shap.Explanation of one or more explanations: values (leads,) or
    (n, leads), base value E[f], features (e.g. the leads' RMS) as data."""
    import shap  # here, not at the top: importing shap takes ~1.5 s
    contrib = np.asarray(contrib, dtype=np.float64)
    base = np.broadcast_to(np.asarray(expected, dtype=np.float64), contrib.shape[:-1])
    return shap.Explanation(values=contrib, base_values=base if base.ndim else float(base),
                            data=None if features is None else np.asarray(features, float),
                            feature_names=list(leads))


def bar_decimals(values, significant=2, most=6):
    """Decimals that show the largest |value| with `significant` digits (at
    least 2): shap's waterfall prints a fixed %+0.2f, which reads +0 and -0
    on every bar of a weakly trained model."""
    top = float(np.max(np.abs(values))) if len(values) else 0.0
    if not np.isfinite(top) or top == 0:
        return 2
    return int(min(most, max(2, significant - 1 - np.floor(np.log10(top)))))


def plot_waterfall(contrib, expected, fx, leads, features=None, title='', output='logit'):
    """A waterfall of one explanation: from E[f] (the background's mean
    output) through the lead contributions, largest first, to E[f] + their
    sum, then the Monte Carlo residual (expected gradients adds up to f(x)
    only in expectation), so the plot ends at the model's f(x), the value the
    title gives. Drawn as shap.plots.waterfall draws it (its colours, the
    leads' RMS left of their names), with bar labels precise enough to read
    (bar_decimals). -> figure."""
    plt = utils.pyplot()
    contrib = np.asarray(contrib, dtype=np.float64)
    residual = fx - expected - contrib.sum()
    order = np.argsort(-np.abs(contrib), kind='stable')
    names = [leads[i] if features is None else f'{features[i]:.3f} = {leads[i]}' for i in order]
    names.append('Monte Carlo residual')
    steps = np.append(contrib[order], residual)
    digits = bar_decimals(steps)
    n = len(steps)
    fig, ax = plt.subplots(figsize=(8, 0.42 * n + 1.6))
    left = expected
    for k, v in enumerate(steps):
        y = n - 1 - k  # the first step at the top
        colour = 'tab:gray' if k == n - 1 else ('#ff0051' if v >= 0 else '#008bfb')
        ax.barh(y, v, left=left, height=0.6, color=colour)
        ax.text(left + v, y, f' {v:+.{digits}f} ',
                ha='left' if v >= 0 else 'right', va='center', fontsize=8)
        left += v
    leads_end = expected + contrib.sum()
    for x, y, style, text in ((expected, n - 0.35, '--', f'E[f] = {expected:.3f}'),
                              (leads_end, -0.85, ':', f'E[f] + leads = {leads_end:.3f}'),
                              (fx, -1.45, '-', f'f(x) = {fx:.3f}')):
        ax.axvline(x, color='k', lw=0.8, ls=style)
        ax.text(x, y, text, ha='center', fontsize=8, backgroundcolor='white')
    ax.set_yticks(range(n), names[::-1], fontsize=9)
    path = expected + np.concatenate([[0], np.cumsum(steps)])
    span = max(float(np.ptp(path)), 1e-9)
    ax.set_xlim(path.min() - 0.2 * span, path.max() + 0.2 * span)  # room for the labels
    ax.set_ylim(-1.7, n + 0.1)
    ax.set_xlabel(output)
    for side in ('top', 'right'):
        ax.spines[side].set_visible(False)
    fig.suptitle(f'{title}\n{output}: f(x) = {fx:.3f}, E[f] = {expected:.3f}; the leads add up '
                 f'to {contrib.sum():+.3f} (Monte Carlo residual {residual:+.3f})'
                 + ('\nnumbers left of the leads: their RMS amplitude (mV)'
                    if features is not None else ''), fontsize=9)
    fig.tight_layout()
    return fig


def plot_summary(contribs, features, leads, title=''):
    """shap.plots.beeswarm of the per-lead contributions (n, leads) of n
    explanations of one class, coloured by the leads' RMS (n, leads). -> figure."""
    import shap  # here, not at the top: importing shap takes ~1.5 s
    plt = utils.pyplot()
    plt.figure()
    shap.plots.beeswarm(lead_explanation(contribs, np.zeros(len(contribs)), leads, features),
                        max_display=len(leads), show=False,
                        color_bar_label='lead RMS amplitude (mV)')
    fig = plt.gcf()
    fig.suptitle(title, fontsize=10)
    return fig


# --------------------------------------------------------------------------
# Beats: annotated (.atr) or detected, and which ones are ectopic.

def annotated_beats(record_path, length, window):
    """R peaks and symbols from RECORD.atr, in window coordinates -> (samples
    int64, symbols array) of the beats inside the record's real part, or None
    when there is no .atr or it does not fit the record. The window holds the
    record's last `window` samples at FS, front-padded when shorter."""
    record_path = Path(record_path)
    try:
        found = read_beats(record_path)
        hdr = read_record(record_path) if found is not None else None
    except RecordError as e:
        print(f'warning: {e}; detecting the R peaks instead')
        return None
    if found is None:
        return None
    n = round(hdr.sig_len * FS / hdr.fs)
    if min(n, window) != length:
        print(f'warning: {record_path}.hea gives {n} samples at {FS} Hz where the cache '
              f'holds {length}; detecting the R peaks instead of using its .atr')
        return None
    r = np.round(found.samples * FS / found.fs).astype(np.int64) + window - n
    sym = np.asarray(found.symbols)
    keep = r >= window - length
    return r[keep], sym[keep]


def detected_beats(x, length, window):
    """R peaks of the real part of x (leads, window) with the project's
    multi-lead detector, labelled like an .atr by measure.py's rule
    (measure.label_beats): 'V' a QRS of another shape than the record's
    median one, 'A' a premature beat of that shape, 'N' otherwise, 'Q' too
    close to an end to judge -> (samples in window coordinates, symbols).
    Both run, as in measure.py, on the high-passed leads without a NaN
    sample (the detector gives those no vote either)."""
    real = np.asarray(x, dtype=np.float64)[:, window - length:]
    xh = measure.highpass(real[np.isfinite(real).all(axis=1)].T)
    peaks, _ = detect_multilead(xh, FS)
    peaks = np.asarray(peaks, dtype=np.int64)
    return peaks + window - length, measure.label_beats(xh, peaks)


def record_beats(x, length, record_path=None):
    """-> (R peaks in window coordinates, symbols, source 'atr' or 'detector')."""
    window = x.shape[-1]
    found = annotated_beats(record_path, length, window) if record_path is not None else None
    if found is not None:
        return found[0], found[1], 'atr'
    r, sym = detected_beats(x, length, window)
    return r, sym, 'detector'


def aligned_beats(peaks, symbols, cls):
    """The beats a class is aligned on: its ectopic beats for PAC/PVC, every
    beat for AF (whose irregular RR would make the detector's prematurity rule
    call many of them A), the normal beats otherwise (all when none is)."""
    symbols = np.asarray(symbols)
    if cls in ECTOPIC:
        return peaks[symbols == ECTOPIC[cls]]
    normal = peaks[symbols == 'N']
    if cls == 'AF':
        return peaks
    return normal if len(normal) else peaks


# --------------------------------------------------------------------------
# Profiles.

def window_samples():
    """(samples before, samples after) the R peak, and the time axis in ms."""
    before, after = int(BEFORE_MS * FS / 1000), int(AFTER_MS * FS / 1000)
    return before, after, (np.arange(-before, after)) * 1000 / FS


def beat_windows(a, peaks, before, after):
    """(leads, n) -> (beats, leads, before + after): the windows around the
    peaks that lie wholly inside [0, n)."""
    peaks = np.asarray(peaks, dtype=np.int64)
    peaks = peaks[(peaks - before >= 0) & (peaks + after <= a.shape[-1])]
    return a[:, peaks[:, None] + np.arange(-before, after)].transpose(1, 0, 2)


def record_profile(x, values, length, peaks):
    """One explanation -> (profile (leads, T): mean over its beats of the
    positive SHAP density, median beat (leads, T) in mV about each lead's
    median, number of beats), or None without a whole beat window or with no
    positive SHAP. Peaks are in window coordinates."""
    before, after, _ = window_samples()
    window = x.shape[-1]
    pos = np.clip(np.asarray(values, dtype=np.float64)[:, window - length:], 0, None)
    if pos.sum() <= 0:
        return None
    density = pos / pos.mean()
    real_peaks = np.asarray(peaks, dtype=np.int64) - (window - length)
    prof = beat_windows(density, real_peaks, before, after)
    if not len(prof):
        return None
    real = np.asarray(x, dtype=np.float64)[:, window - length:]
    sig = beat_windows(real, real_peaks, before, after)
    sig = sig - np.median(sig, axis=-1, keepdims=True)
    return prof.mean(0), np.median(sig, axis=0), len(prof)


def delineate_qrs(beat):
    """QRS onset and end in ms relative to the R peak of a median beat
    (leads, T) on the window_samples() axis -> (on, end), or None where the
    slope never settles. measure.qrs_bounds delineates it, the rule of
    measure.py's QRS duration (end - on is the QRS it would measure)."""
    before, _, t = window_samples()
    on, off = measure.qrs_bounds(np.asarray(beat, dtype=np.float64).T, before)
    if on is None:
        return None
    return float(t[on]), float(t[off])


def regions_for(qrs_on, qrs_end):
    """{region: (start ms, end ms)} on the beat window."""
    return {'P': (-BEFORE_MS, qrs_on), 'QRS': (qrs_on, qrs_end),
            'ST': (qrs_end, qrs_end + ST_MS), 'T': (qrs_end + ST_MS, AFTER_MS)}


def top_leads(profile, top=4):
    """Indexes of the `top` leads with the most positive mass in the profile."""
    return np.argsort(-np.asarray(profile).sum(-1), kind='stable')[:top]


def region_peaks(profile, regions, top=4, smooth_ms=40):
    """Profile (leads, T) -> ({region: mean density of its `top` leads, the
    ones plot_profile draws}, the time in ms of the maximum of that profile
    smoothed over `smooth_ms`, the region where the mean is highest).
    Means, not sample maxima: the maximum of a Monte Carlo estimate is its
    largest noise, and it sits on the QRS, where the input and hence the
    values vary most. The top leads, not all twelve: a criterion such as ST
    depression lives in some leads, while every lead has a QRS."""
    _, _, t = window_samples()
    profile = np.asarray(profile, dtype=np.float64)
    total = profile[top_leads(profile, top)].sum(0)
    means = {k: float(total[(t >= a) & (t < b)].mean()) if ((t >= a) & (t < b)).any() else 0.0
             for k, (a, b) in regions.items()}
    smooth = uniform_filter1d(total, max(1, int(smooth_ms * FS / 1000)))
    return means, float(t[np.argmax(smooth)]), max(means, key=means.get)


def between_qrs_share(values, length, peaks, qrs_on, qrs_end):
    """Share of a record's positive SHAP mass (all leads) outside its QRS
    complexes, and the share of its time they leave -> (mass share, time share)."""
    window = values.shape[-1]
    pos = np.clip(np.asarray(values, dtype=np.float64)[:, window - length:], 0, None).sum(0)
    qrs = np.zeros(length, bool)
    for r in np.asarray(peaks, dtype=np.int64) - (window - length):
        a, b = r + int(qrs_on * FS / 1000), r + int(qrs_end * FS / 1000) + 1
        qrs[max(0, a):max(0, min(length, b))] = True
    total = pos.sum()
    return (float(pos[~qrs].sum() / total) if total > 0 else float('nan'),
            float((~qrs).mean()))


def class_profile(items, cls):
    """items: (x, values, length, peaks, symbols) of the explanations of
    `cls` -> dict(profile, median_beat, regions, n_records, n_beats, ...) or
    None when no explanation has a whole beat window."""
    profs, beats, n_beats, used = [], [], 0, []
    for k, (x, values, length, peaks, symbols) in enumerate(items):
        rp = record_profile(x, values, length, aligned_beats(peaks, symbols, cls))
        if rp is not None:
            profs.append(rp[0])
            beats.append(rp[1])
            n_beats += rp[2]
            used.append(k)
    if not profs:
        return None
    profile, median_beat = np.mean(profs, axis=0), np.median(beats, axis=0)
    qrs = delineate_qrs(median_beat)
    if qrs is None:
        qrs = NOMINAL_QRS_MS
        print(f'{cls}: no QRS onset/offset on the median beat (its slope never settles); '
              f'the QRS region is the nominal {qrs[0]:.0f}..{qrs[1]:.0f} ms')
    on, end = qrs
    regions = regions_for(on, end)
    means, at, where = region_peaks(profile, regions)
    out = {'profile': profile, 'median_beat': median_beat, 'regions': regions,
           'n_records': len(profs), 'n_beats': n_beats, 'region_means': means,
           'peak_ms': at, 'peak_region': where}
    shares = [between_qrs_share(items[k][1], items[k][2], items[k][3], on, end) for k in used]
    out['between_qrs_share'] = float(np.nanmean([s[0] for s in shares]))
    out['between_qrs_time'] = float(np.mean([s[1] for s in shares]))
    return out


def plot_profile(t_ms, median_beat, profile, leads, regions, title='', top=4):
    """The median beat of the `top` leads with the most positive SHAP, the
    profile shaded under it (right axis), the regions marked. -> figure."""
    plt = utils.pyplot()
    mass = np.asarray(profile).sum(-1)
    order = top_leads(profile, top)
    share = mass / mass.sum() if mass.sum() > 0 else mass
    fig, axs = plt.subplots(len(order), 1, figsize=(8, 1.7 * len(order) + 1.0), sharex=True,
                            squeeze=False)
    ymax = float(np.asarray(profile)[order].max()) * 1.05 or 1.0
    for row, (ax, lead) in enumerate(zip(axs[:, 0], order)):
        for name, (a, b) in regions.items():
            ax.axvspan(a, b, color=REGION_COLOURS[name], alpha=0.08, lw=0)
            if row == 0:
                ax.text((a + b) / 2, 1.02, name, transform=ax.get_xaxis_transform(),
                        ha='center', va='bottom', fontsize=9, color=REGION_COLOURS[name])
        shade = ax.twinx()
        shade.fill_between(t_ms, 0, profile[lead], color='tab:red', alpha=0.35, lw=0)
        shade.set_ylim(0, ymax)
        shade.set_ylabel('+SHAP density', fontsize=8, color='tab:red')
        shade.tick_params(labelsize=7, colors='tab:red')
        ax.set_zorder(shade.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.plot(t_ms, median_beat[lead], color='k', lw=1.0)
        ax.axvline(0, color='k', lw=0.5, ls=':')
        ax.set_ylabel(f'{leads[lead]} (mV)\n{share[lead]:.0%} of +SHAP', fontsize=9)
        ax.grid(alpha=0.3)
        ax.margins(x=0)
    axs[-1, 0].set_xlabel('time from the R peak (ms)')
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------
# Everything, for the records shap_values.py explained.

def record_path_finder(data_dir):
    """-> pid -> path of its WFDB record (no suffix) in data_dir, or None (no
    data dir: --plots-only elsewhere). Records in subfolders are found by one
    search, done on the first miss."""
    if data_dir is None or not Path(data_dir).is_dir():
        return lambda pid: None
    index = {}

    def find(pid):
        direct = Path(data_dir) / pid
        if direct.with_suffix('.hea').exists():
            return direct
        if not index:
            index.update({p.stem: p.with_suffix('') for p in Path(data_dir).rglob('*.hea')})
            index.setdefault('', None)   # searched, even when it found nothing
        return index.get(pid)
    return find


def contributions_table(records, leads, expected):
    """One row per explanation: patient_id, class, predicted, f(x), E[f], the
    contributions per lead, residual -> DataFrame."""
    rows = []
    for pid, r in sorted(records.items()):
        contrib = lead_contributions(r['values'], r['length'])
        present = utils.decide(r['prob'], r['threshold'])
        for c, fx, row in zip(r['classes'], r['fx'], contrib):
            rows.append({'patient_id': pid, 'class': CLASSES[c],
                         'predicted': bool(present[c]),
                         'fx': float(fx), 'expected': float(expected[c]),
                         **dict(zip(leads, row)),
                         'residual': float(fx - expected[c] - row.sum())})
    return pd.DataFrame(rows)


def draw_contributions(out_dir, records, leads, expected, output):
    """Waterfall per explanation, beeswarm per class; -> number of figures."""
    n = 0
    per_class = {}
    for pid, r in sorted(records.items()):
        contrib = lead_contributions(r['values'], r['length'])
        rms = lead_rms(r['x'], r['length'])
        for c, fx, row in zip(r['classes'], r['fx'], contrib):
            cls = CLASSES[c]
            fig = plot_waterfall(row, float(expected[c]), float(fx), leads, rms,
                                 title=f'{pid}: {cls} (p={r["prob"][c]:.2f}), lead '
                                       'contributions (SHAP summed over time)', output=output)
            utils.save_figure(fig, out_dir / 'records' / f'{pid}_{cls}_waterfall.png',
                              bbox_inches='tight')
            per_class.setdefault(cls, ([], []))
            per_class[cls][0].append(row)
            per_class[cls][1].append(rms)
            n += 1
    for cls, (rows, rms) in per_class.items():
        fig = plot_summary(np.array(rows), np.array(rms), leads,
                           title=f'{cls}: per-lead contributions to the {output}, '
                                 f'{len(rows)} explained record(s)')
        utils.save_figure(fig, out_dir / f'summary_{cls}.png', bbox_inches='tight')
        n += 1
    return n


def profile_title(cls, p):
    title = (f'{cls}: mean positive SHAP density around the '
             f'{"ectopic (" + ECTOPIC[cls] + ") " if cls in ECTOPIC else ""}beats, '
             f'{p["n_records"]} record(s), {p["n_beats"]} beats\nhighest in {p["peak_region"]} '
             f'(mean density of these leads: ' + ', '.join(f'{k} {v:.1f}' for k, v in
                                                       p['region_means'].items()) + ')')
    if cls == 'AF':
        title += (f'\n{p["between_qrs_share"]:.0%} of the mass lies between QRS complexes '
                  f'({p["between_qrs_time"]:.0%} of the time)')
    return title


def draw_profiles(out_dir, records, leads, data_dir):
    """Profiles of the predicted classes -> {class: profile dict}."""
    find = record_path_finder(data_dir)
    items, sources = {}, {}
    for pid, r in sorted(records.items()):
        present = utils.decide(r['prob'], r['threshold'])
        predicted = [(c, v) for c, v in zip(r['classes'], r['values']) if present[c]]
        if not predicted:
            continue
        try:
            peaks, sym, src = record_beats(r['x'], r['length'], find(pid))
        except ValueError as e:   # the detector refuses NaNs or a too-short record
            print(f'warning: {pid}: no R peaks ({e}); left out of the profiles')
            continue
        if len(peaks) == 0:   # flat or pure noise: nothing to align on
            print(f'warning: {pid}: no R peaks (the detector found none); '
                  'left out of the profiles')
            continue
        sources[src] = sources.get(src, 0) + 1
        for c, v in predicted:
            items.setdefault(CLASSES[c], []).append((r['x'], v, r['length'], peaks, sym))
    _, _, t = window_samples()
    profiles = {}
    for cls in [c for c in CLASSES if c in items]:
        p = class_profile(items[cls], cls)
        if p is None:
            print(f'{cls}: no explained record has a whole '
                  f'{"ectopic " if cls in ECTOPIC else ""}beat window; no profile')
            continue
        profiles[cls] = p
        fig = plot_profile(t, p['median_beat'], p['profile'], leads, p['regions'],
                           profile_title(cls, p))
        utils.save_figure(fig, out_dir / f'profile_{cls}.png', bbox_inches='tight')
    if sources:
        print('R peaks: ' + ', '.join(f'{n} record(s) from {s}' for s, n in sources.items()))
    return profiles


def peaks_table(profiles, leads):
    """Per class: records, beats, peak, mean density per region, criterion region."""
    rows = []
    for cls, p in profiles.items():
        top = [leads[i] for i in top_leads(p['profile'])]
        rows.append({'class': cls, 'records': p['n_records'], 'beats': p['n_beats'],
                     'peak_ms': round(p['peak_ms']), 'peak_region': p['peak_region'],
                     'criterion_region': CRITERION_REGION.get(cls, ''),
                     **{f'mean_{k}': round(v, 2) for k, v in p['region_means'].items()},
                     'qrs_ms': f'{p["regions"]["QRS"][0]:.0f}..{p["regions"]["QRS"][1]:.0f}',
                     'between_qrs_share': round(p['between_qrs_share'], 3),
                     'between_qrs_time': round(p['between_qrs_time'], 3),
                     'top_leads': ' '.join(top)})
    return pd.DataFrame(rows).set_index('class') if rows else pd.DataFrame()


def save_profiles(path, profiles, leads):
    _, _, t = window_samples()
    arrays = {'t_ms': t, 'leads': np.array(leads), 'classes': np.array(list(profiles)),
              'regions': np.array(REGIONS)}
    for cls, p in profiles.items():
        arrays[f'profile_{cls}'] = p['profile'].astype(np.float32)
        arrays[f'median_beat_{cls}'] = p['median_beat'].astype(np.float32)
        arrays[f'region_bounds_{cls}'] = np.array([p['regions'][k] for k in REGIONS])
        arrays[f'n_records_{cls}'] = np.array(p['n_records'])
        arrays[f'n_beats_{cls}'] = np.array(p['n_beats'])
        arrays[f'between_qrs_share_{cls}'] = np.array(p['between_qrs_share'])
    utils.atomic_savez(path, **arrays)


def write_population_outputs(out_dir, records, leads, expected, output='logit',
                             data_dir=None):
    """records: {pid: dict(x, length, prob, threshold, classes, values, fx)}
    as shap_values.write_outputs holds them -> (profiles, peaks table)."""
    out_dir = Path(out_dir)
    leads, expected = list(leads), np.asarray(expected, dtype=np.float64)
    table = contributions_table(records, leads, expected)
    if not len(table):
        return {}, peaks_table({}, leads)
    utils.atomic_to_csv(table, out_dir / 'lead_contributions.csv', index=False,
                        float_format='%.6g')
    n = draw_contributions(out_dir, records, leads, expected, output)
    print(f'{n} waterfall and summary figures (lead contributions: '
          f'{out_dir / "lead_contributions.csv"})')
    profiles = draw_profiles(out_dir, records, leads, data_dir)
    peaks = peaks_table(profiles, leads)
    if profiles:
        save_profiles(out_dir / 'profiles.npz', profiles, leads)
        utils.atomic_to_csv(peaks, out_dir / 'profile_peaks.csv')
        print('beat-aligned profiles (+SHAP density of the top 4 leads, 1 = even: its mean '
              'per region, the region where it is highest, the time of its 40-ms smoothed '
              'peak; criterion: where the synthetic generator puts it):')
        print(peaks.to_string())
    return profiles, peaks

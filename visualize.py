"""Draw ECG records as PNGs: the study's 12x1 and 6x2 layouts and the standard
clinical printout (3x4 leads of 2.5 s + a lead II rhythm strip on ECG paper).

    python visualize.py --record-paths 'data/CPSC/A000*.mat'
    python visualize.py --record-paths ../shared/data/cpsc2018_wfdb/A0001 \
        --layouts clinical --out results/plots
    python visualize.py --record-paths ../shared/data/mitdb/100 --annotations --seconds 10
    python visualize.py --record-paths 'data/SYNTH/A000[1-9].hea' --annotations

--record-paths takes globs (quote them) or paths of .hea, .mat or bare WFDB
record names. Writes, per record NAME, into --out (default results/plots):
NAME-12x1.png, NAME-6x2.png and NAME-clinical.png, and prints one line per
file written.

- 12x1 / 6x2: all leads stacked, or limb leads left and chest leads right;
  seconds on x, mV on y (the same mV scale in every lead); the whole record,
  or its first --seconds.
- clinical: ECG paper (1 mm minor and 5 mm major grid), 25 mm/s and 10 mm/mV
  with 1 mm the same length on both axes (true size when printed at 100%),
  a 1 mV calibration pulse at the start of each row, the first 10 s. Each
  column of the 3x4 grid shows 2.5 s of consecutive time, as an
  electrocardiograph prints it (I, II, III from 0-2.5 s, aVR, aVL, aVF from
  2.5-5 s, ...). Each lead's segment is drawn about its median so a wandering
  baseline does not push it into the next row; the signal is not filtered.

Records are read with records.read_record. Those that hold or can derive the 12
standard leads (lead aliases such as D1 or AVR; an 8-lead export gets III,
aVR, aVL, aVF from I and II) are resampled to 500 Hz, standard lead order.
Others (e.g. MIT-BIH, 2 leads at 360 Hz) are drawn as they are, in the 12x1
layout only.
--annotations overlays the beats of NAME.atr (wfdb reference annotations):
a marker at each R peak with its symbol, coloured by beat class (green
normal, orange supraventricular, red ventricular, purple other).

A bad record (missing, truncated, corrupt) gives one line 'error: NAME:
reason' on stderr and is skipped; --strict stops there instead. PNGs are
written atomically, so an interrupted run leaves no half-written image.
"""
import argparse
import dataclasses
import math
import sys
from pathlib import Path

import numpy as np

from records import (
    FS,
    LEADS,
    Reading,
    RecordError,
    find_records,
    length_at_fs,
    obtainable,
    prepare,
    read_beats,
    read_record,
    record_base,
)
from utils import CLASS_NAMES, SNOMED_TO_CLASS, dx_to_classes, save_figure

LAYOUTS = ['12x1', '6x2', 'clinical']

# The clinical printout, in paper units. Standard electrocardiograph settings.
SPEED = 25.0             # mm/s
GAIN = 10.0              # mm/mV
CLINICAL_SECONDS = 10.0  # a standard 12-lead printout shows 10 s
CLINICAL_ROWS = [['I', 'aVR', 'V1', 'V4'],
                 ['II', 'aVL', 'V2', 'V5'],
                 ['III', 'aVF', 'V3', 'V6']]
RHYTHM_LEAD = 'II'
CAL_SECONDS = 0.4        # room left of t=0 for the calibration pulse (10 mm)
ROW_MV = 4.0             # 40 mm per row: QRS of up to ~2.5 mV stay in their row
BASELINE_MV = 2.5        # baseline sits 25 mm below the top of its row
MARGIN_MM = {'left': 8.0, 'right': 8.0, 'top': 24.0, 'bottom': 10.0}
PAPER_COLOR = '#fffafa'
MINOR_COLOR = '#f5c4c4'
MAJOR_COLOR = '#e27d7d'
TRACE_COLOR = 'black'

# 12x1 / 6x2: the figure is as wide as the record at 25 mm/s (6x2: each column
# at half that), within these widths in inches; a 30-min record is squeezed.
MIN_WIDTH_IN, MAX_WIDTH_IN = 10.0, 60.0
LEAD_HEIGHT_IN = {'12x1': 0.9, '6x2': 1.3}
MINOR_GRID_MAX_SECONDS = 60  # 0.2 s grid lines on longer records are a solid wash

# Colours by beat class (records.read_beats gives an .atr's beats): normal/bundle
# branch block, supraventricular ectopic, ventricular ectopic, other (fusion,
# paced, unclassifiable).
BEAT_COLORS = {**{s: '#1a9641' for s in 'NLRBej'},
               **{s: '#f07c00' for s in 'AaJSn'},
               **{s: '#d7191c' for s in 'VrE'}}
OTHER_BEAT_COLOR = '#7b3294'
MAX_BEAT_LABELS = 300  # more symbols than this overprint each other


class BadRecord(Exception):
    """A record that cannot be drawn; str() = 'RECORD: reason'."""

    def __init__(self, record, reason):
        super().__init__(f'{record}: {reason}')
        self.record, self.reason = record, reason


def get_args_parser():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--record-paths', nargs='+', required=True, metavar='GLOB',
                        help='globs or paths of .hea/.mat files or bare WFDB record '
                             "names; quote globs, e.g. 'data/CPSC/A000*.mat'")
    parser.add_argument('--out', default='results/plots', metavar='DIR',
                        help='folder for the PNGs (default: results/plots)')
    parser.add_argument('--layouts', default=','.join(LAYOUTS), metavar='NAMES',
                        help=f"comma-separated of {','.join(LAYOUTS)} "
                             f"(default: {','.join(LAYOUTS)})")
    parser.add_argument('--seconds', default=None, type=float, metavar='S',
                        help='draw only the first S seconds in 12x1 and 6x2 '
                             '(default: the whole record; clinical always shows 10 s)')
    parser.add_argument('--annotations', action='store_true',
                        help='overlay the beats of NAME.atr (R peaks and symbols)')
    parser.add_argument('--dpi', default=150, type=int, metavar='N',
                        help='PNG resolution; 150 gives 5.9 pixels per mm of '
                             'ECG paper (default: 150)')
    parser.add_argument('--lead-map', default=None, metavar='NAME=LEAD[,...]',
                        help="which lead a generically named channel is, e.g. 'ECG=II'")
    parser.add_argument('--strict', action='store_true',
                        help='stop at the first bad record instead of skipping it')
    return parser


# --------------------------------------------------------------------------
# Input.

def load_record(path, seconds=None, lead_map=None):
    """-> records.Reading: signal (n, nleads) float mV at fs, its leads, and
    the record (name, age, sex, dx, the recorded rate). Records that hold or
    can derive the 12 standard leads (an 8-lead export: III, aVR, aVL, aVF
    from I and II) come at 500 Hz in records.LEADS order; others as they are
    (their own rate and lead names). `seconds` limits how much is read.
    Raises BadRecord."""
    base = record_base(path)
    try:
        rec = read_record(path, lead_map=lead_map)
        if obtainable([lead for lead in rec.leads if lead]) == LEADS:
            n = length_at_fs(rec)
            if seconds is not None:
                n = max(1, min(n, round(seconds * FS)))
            signal, leads, fs = prepare(rec, LEADS, window=n, end=n).x.T, list(LEADS), FS
        else:  # not the 12 standard leads: what there is, at its own rate (12x1 only)
            n = rec.sig_len if seconds is None else max(1, min(rec.sig_len,
                                                                 round(seconds * rec.fs)))
            signal, leads, fs = rec.read(0, n).astype(np.float32), rec.sig_names, rec.fs
    except RecordError as e:
        raise BadRecord(base.name, e.reason) from None
    return Reading(record=rec, name=rec.name, signal=signal, leads=list(leads), fs=float(fs))


def beat_times(rec, seconds=None):
    """records.read_beats for a Reading of load_record, in seconds -> (times,
    symbols), or None without an .atr (or an ISHNE Holter's .ann); BadRecord
    when it is unreadable."""
    fs = rec.record.fs
    stop = int(seconds * fs) + 1 if seconds is not None else None
    try:
        beats = read_beats(record_base(rec.record.path), stop, fs=fs)
    except RecordError as e:
        raise BadRecord(e.record, e.reason) from None
    return None if beats is None else (beats.samples / beats.fs, beats.symbols)


# --------------------------------------------------------------------------
# Text.

def diagnosis_text(dx):
    """SNOMED-CT codes -> the study's class names in words; other codes are
    listed as codes. Every code the header gives is shown, so 426783006 reads
    'sinus rhythm' also beside other codes (the challenge's meaning)."""
    words = [CLASS_NAMES[c] for c in dx_to_classes(dx, snr_rule='sinus')]
    others = [str(c) for c in dx if str(c).strip() not in SNOMED_TO_CLASS]
    if others:
        words.append('SNOMED-CT ' + ', '.join(others))
    return '; '.join(words) if words else 'no diagnosis in header'


def title_text(rec):
    """'A0001 | 74 y | Male | right bundle branch block' of a Reading."""
    age = rec.record.age
    try:
        age = f'{float(age):.0f} y' if np.isfinite(float(age)) and float(age) >= 0 else 'age ?'
    except (TypeError, ValueError):
        age = 'age ?'
    sex = rec.record.sex if str(rec.record.sex).lower() in ('male', 'female') else 'sex ?'
    return f'{rec.name} | {age} | {sex} | {diagnosis_text(rec.record.dx)}'


def _rate_text(rec):
    if rec.fs == rec.record.fs:
        return f'{rec.fs:g} Hz'
    return f'{rec.fs:g} Hz (recorded at {rec.record.fs:g} Hz)'


def _beat_file(rec):
    """The annotation file the beats came from: NAME.atr, or an ISHNE Holter's .ann."""
    return rec.name + ('.ann' if str(record_base(rec.record.path)).lower().endswith('.ecg')
                       else '.atr')


def _beats_text(beats, atr_name):
    symbols, counts = np.unique(beats[1], return_counts=True) if beats[1] else ([], [])
    return f'beats from {atr_name}: ' + (', '.join(
        f'{s} {n}' for s, n in zip(symbols, counts)) or 'none')


# --------------------------------------------------------------------------
# Figures. Each builder returns a matplotlib Figure with an Agg canvas and no
# pyplot state, so nothing accumulates over thousands of records.

def new_figure(width_in, height_in):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width_in, height_in))
    FigureCanvasAgg(fig)
    return fig


def _draw_beats(ax, t, x, beats, labels=None, quiet_until=-math.inf):
    """Markers at the beats on trace x(t), one line per beat symbol coloured by
    beat class; symbols above the axes (labels='top') or just above each
    beat's peak ('peak'), none before time `quiet_until` (the lead label) and
    none when there are too many to read (a 30-min record)."""
    if beats is None or len(t) == 0:
        return
    times, symbols = np.asarray(beats[0], dtype=float), np.asarray(beats[1], dtype=str)
    inside = (times >= t[0]) & (times <= t[-1])
    times, symbols = times[inside], symbols[inside]
    fs = (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 else 1.0
    idx = np.clip(np.round((times - t[0]) * fs).astype(int), 0, len(x) - 1)
    for sym in sorted(set(symbols)):
        m = symbols == sym
        ax.plot(times[m], x[idx[m]], 'o', ms=4, mfc='none', mec=_beat_color(sym),
                mew=1.0, zorder=4, label=sym)
    if labels is None or len(times) > MAX_BEAT_LABELS:
        return
    half_window = int(0.06 * fs)  # the R peak is within 60 ms of the annotation
    for time, sym, i in zip(times, symbols, idx):
        if time < quiet_until:
            continue
        kw = {'color': _beat_color(sym), 'ha': 'center', 'va': 'bottom', 'fontsize': 8,
              'fontweight': 'bold', 'zorder': 4}
        if labels == 'top':
            ax.text(time, 1.0, sym, transform=ax.get_xaxis_transform(), **kw)
        else:
            top = x[max(0, i - half_window):i + half_window + 1].max()
            ax.text(time, top + 0.15, sym, **kw)


def _beat_color(sym):
    return BEAT_COLORS.get(sym, OTHER_BEAT_COLOR)


def _strip_width(seconds):
    return float(np.clip(seconds * SPEED / 25.4 + 1.5, MIN_WIDTH_IN, MAX_WIDTH_IN))


def _lead_limits(signal):
    """One mV half-range for every lead (amplitudes comparable across leads),
    each lead centred on its median. NaN gaps (wfdb's missing samples) are
    ignored; matplotlib leaves them as gaps in the trace."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)  # all-NaN leads
        centres = np.nan_to_num(np.nanmedian(signal, axis=0)) if len(signal) \
            else np.zeros(signal.shape[1])
        spread = np.nanmax(np.abs(signal - centres)) if signal.size else np.nan
    half = max(1.0, 1.08 * float(spread)) if np.isfinite(spread) else 1.0
    return centres, half


def _multiples(lo, hi, step):
    """Multiples of step in [lo, hi]; the tolerance keeps 16 / 0.1 = 159.99..."""
    return np.arange(math.ceil(lo / step - 1e-6), math.floor(hi / step + 1e-6) + 1) * step


def _box_grid(ax, xlim, ylim, x_step, y_step, color, lw):
    """Grid lines as one LineCollection: far cheaper than minor ticks."""
    from matplotlib.collections import LineCollection
    xs, ys = _multiples(*xlim, x_step), _multiples(*ylim, y_step)
    segs = [[(x, ylim[0]), (x, ylim[1])] for x in xs]
    segs += [[(xlim[0], y), (xlim[1], y)] for y in ys]
    ax.add_collection(LineCollection(segs, colors=color, linewidths=lw, zorder=1))


def _strip_figure(rec, grid, beats=None, layout='12x1'):
    """12x1 and 6x2: `grid` is a list of columns, each a list of lead names."""
    from matplotlib.ticker import MaxNLocator, MultipleLocator
    signal, fs = rec.signal, rec.fs
    n = len(signal)
    seconds = n / fs
    nrows, ncols = max(len(col) for col in grid), len(grid)
    width = _strip_width(seconds)
    height = max(3.5, 1.3 + LEAD_HEIGHT_IN[layout] * nrows)
    fig = new_figure(width, height)
    # Fixed margins in inches instead of tight_layout (slow with 12 axes).
    top_in = 0.8 if beats is None else 1.0
    fig.subplots_adjust(left=0.75 / width, right=1 - 0.25 / width,
                        bottom=0.55 / height, top=1 - top_in / height,
                        wspace=0.9 / (width / ncols), hspace=0.18)
    centres, half = _lead_limits(signal)
    t = np.arange(n) / fs
    axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False)
    paper = seconds <= MINOR_GRID_MAX_SECONDS
    for c, column in enumerate(grid):
        for r in range(nrows):
            ax = axes[r, c]
            if r >= len(column):
                ax.set_visible(False)
                continue
            i = rec.leads.index(column[r])
            ax.plot(t, signal[:, i], color=TRACE_COLOR, lw=0.6, zorder=3)
            ylim = (centres[i] - half, centres[i] + half)
            ax.set_ylim(*ylim)
            ax.set_xlim(0, seconds)
            ax.set_ylabel(f'{column[r]}\nmV', rotation=0, ha='right', va='center',
                          fontsize=9)
            if paper:
                # ECG-paper boxes of 0.2 s x 0.5 mV (1 mV when the range is
                # large, to stay legible), labels every 1 s.
                _box_grid(ax, (0, seconds), ylim, 0.2, 0.5 if half <= 2 else 1.0,
                          MINOR_COLOR, 0.4)
                ax.xaxis.set_major_locator(MultipleLocator(1.0 if seconds <= 30 else 5.0))
            ax.yaxis.set_major_locator(MaxNLocator(nbins=4, steps=[1, 2, 5, 10]))
            ax.grid(True, color=MAJOR_COLOR, lw=0.6, alpha=0.6)
            ax.tick_params(labelsize=7, labelbottom=r == len(column) - 1)
            for side in ('top', 'right'):
                ax.spines[side].set_visible(False)
            _draw_beats(ax, t, signal[:, i], beats, labels='top' if r == 0 else None)
        axes[len(column) - 1, c].set_xlabel('time (s)', fontsize=9)
    sub = f'{layout}, {_rate_text(rec)}, {seconds:.1f} s'
    if beats is not None:
        sub += '; ' + _beats_text(beats, _beat_file(rec))
    fig.suptitle(f'{title_text(rec)}\n{sub}', fontsize=11, y=1 - 0.12 / height, va='top')
    return fig


def plot_12x1(rec, beats=None):
    """All leads stacked, the whole of rec.signal."""
    return _strip_figure(rec, [rec.leads], beats, '12x1')


def plot_6x2(rec, beats=None):
    """Limb leads (I-aVF) left, chest leads (V1-V6) right, same time span."""
    _require_12_leads(rec, '6x2')
    return _strip_figure(rec, [LEADS[:6], LEADS[6:]], beats, '6x2')


def _require_12_leads(rec, layout):
    if rec.leads != LEADS:
        raise BadRecord(rec.name, f'{layout} layout skipped: {len(rec.leads)}-lead '
                                  f'record ({",".join(rec.leads)}) lacks the 12 '
                                     'standard leads; drawn in 12x1 only')


def clinical_geometry():
    """Paper and figure sizes in mm and the axes' data limits (s, mV)."""
    nrows = len(CLINICAL_ROWS) + 1
    xlim = (-CAL_SECONDS, CLINICAL_SECONDS)
    ylim = (0.0, nrows * ROW_MV)
    paper_w = (xlim[1] - xlim[0]) * SPEED
    paper_h = (ylim[1] - ylim[0]) * GAIN
    fig_w = MARGIN_MM['left'] + paper_w + MARGIN_MM['right']
    fig_h = MARGIN_MM['bottom'] + paper_h + MARGIN_MM['top']
    return {'xlim': xlim, 'ylim': ylim, 'paper_mm': (paper_w, paper_h),
            'figure_mm': (fig_w, fig_h)}


def _paper_grid(ax, xlim, ylim):
    for step_mm, color, lw in ((1.0, MINOR_COLOR, 0.35), (5.0, MAJOR_COLOR, 0.7)):
        _box_grid(ax, xlim, ylim, step_mm / SPEED, step_mm / GAIN, color, lw)


def _calibration_pulse(ax, baseline):
    """1 mV x 0.2 s (10 mm x 5 mm) ending at t=0."""
    x = [-CAL_SECONDS, -0.3, -0.3, -0.1, -0.1, 0.0]
    y = np.array([0, 0, 1, 1, 0, 0]) + baseline
    ax.plot(x, y, color=TRACE_COLOR, lw=0.9, zorder=3, solid_joinstyle='miter')


def plot_clinical(rec, beats=None, title=None, subtitle=None, footnote=None):
    """The standard 12-lead printout, true size at 25 mm/s and 10 mm/mV.
    `title`, `subtitle` and `footnote` replace the header's record | age |
    sex | diagnoses line, the settings line and the grid note (the web app
    passes them translated)."""
    _require_12_leads(rec, 'clinical')
    g = clinical_geometry()
    fig_w, fig_h = g['figure_mm']
    paper_w, paper_h = g['paper_mm']
    fig = new_figure(fig_w / 25.4, fig_h / 25.4)
    ax = fig.add_axes((MARGIN_MM['left'] / fig_w, MARGIN_MM['bottom'] / fig_h,
                       paper_w / fig_w, paper_h / fig_h))
    ax.set_xlim(*g['xlim'])
    ax.set_ylim(*g['ylim'])
    # 1 mV is GAIN mm and 1 s is SPEED mm: an aspect of GAIN/SPEED keeps
    # 1 mm the same length on both axes.
    ax.set_aspect(GAIN / SPEED)
    ax.set_facecolor(PAPER_COLOR)
    ax.set_axis_off()
    ax.add_patch(_paper_background(g))
    _paper_grid(ax, g['xlim'], g['ylim'])

    signal, fs = rec.signal, rec.fs
    n = min(len(signal), round(CLINICAL_SECONDS * fs))
    lead_index = {name: i for i, name in enumerate(rec.leads)}
    text_kw = {'fontsize': 9, 'fontweight': 'bold', 'ha': 'left', 'va': 'bottom', 'zorder': 5}
    rows = CLINICAL_ROWS + [[RHYTHM_LEAD]]
    for r, row in enumerate(rows):
        baseline = g['ylim'][1] - r * ROW_MV - BASELINE_MV
        _calibration_pulse(ax, baseline)
        span = CLINICAL_SECONDS / len(row)
        for c, lead in enumerate(row):
            a, b = round(c * span * fs), round((c + 1) * span * fs)
            seg = signal[a:min(b + 1, n), lead_index[lead]]  # +1: join the columns
            if len(seg) == 0:
                continue
            t = (a + np.arange(len(seg))) / fs
            y = seg - np.median(seg) + baseline
            ax.plot(t, y, color=TRACE_COLOR, lw=0.7, zorder=3)
            ax.text(c * span + 0.05, baseline + 1.05, lead, **text_kw)
            if c > 0:  # lead-change mark, as electrocardiographs print it
                ax.plot([c * span] * 2, [baseline - 0.3, baseline + 0.3],
                        color=TRACE_COLOR, lw=0.9, zorder=3)
            if r == len(rows) - 1:
                _draw_beats(ax, t[:b - a], y[:b - a], beats, labels='peak',
                            quiet_until=c * span + 0.3)

    seconds_total = len(signal) / fs
    shown = f'first {n / fs:.1f} s of {seconds_total:.1f} s' if len(signal) > n \
        else f'{n / fs:.1f} s'
    top = 1 - 4.0 / fig_h
    fig.text(MARGIN_MM['left'] / fig_w, top, title or title_text(rec), fontsize=12,
             fontweight='bold', va='top')
    fig.text(MARGIN_MM['left'] / fig_w, top - 7.0 / fig_h,
             subtitle or f"{SPEED:g} mm/s   {GAIN:g} mm/mV   {_rate_text(rec)}   {shown}   "
             f"rhythm strip: {RHYTHM_LEAD}", fontsize=9, va='top')
    if beats is not None:
        fig.text(MARGIN_MM['left'] / fig_w, top - 12.5 / fig_h,
                 _beats_text(beats, _beat_file(rec)) + ' (marked on the rhythm strip)',
                 fontsize=9, va='top')
    fig.text(1 - MARGIN_MM['right'] / fig_w, 3.0 / fig_h,
             footnote or 'grid: 1 mm = 0.04 s x 0.1 mV; 5 mm = 0.2 s x 0.5 mV', fontsize=7,
             ha='right', va='bottom', color='#a04040')
    return fig


def _paper_background(g):
    from matplotlib.patches import Rectangle
    (x0, x1), (y0, y1) = g['xlim'], g['ylim']
    return Rectangle((x0, y0), x1 - x0, y1 - y0, facecolor=PAPER_COLOR,
                     edgecolor=MAJOR_COLOR, lw=0.8, zorder=0)


PLOTTERS = {'12x1': plot_12x1, '6x2': plot_6x2, 'clinical': plot_clinical}


# --------------------------------------------------------------------------

def parse_layouts(text):
    layouts = [s.strip() for s in text.split(',') if s.strip()]
    bad = [s for s in layouts if s not in LAYOUTS]
    if bad or not layouts:
        raise SystemExit(f"error: unknown layout(s) {bad} in --layouts; use names "
                         f"from {','.join(LAYOUTS)}")
    return layouts


def main(argv=None):
    args = get_args_parser().parse_args(argv)
    layouts = parse_layouts(args.layouts)
    if args.seconds is not None and args.seconds <= 0:
        raise SystemExit('error: --seconds must be positive')
    out = Path(args.out)
    paths, problems = find_records(args.record_paths)

    def bad(line):
        if args.strict:
            raise SystemExit(f'error: {line} (stopped: --strict)')
        print(f'error: {line}', file=sys.stderr, flush=True)

    for line in problems:
        bad(line)
    # Clinical needs 10 s even when --seconds asks 12x1/6x2 for less.
    read_seconds = None if args.seconds is None else max(
        args.seconds, CLINICAL_SECONDS if 'clinical' in layouts else 0)
    written, used_names, warned_atr = [], set(), False
    for path in paths:
        try:
            rec = load_record(path, read_seconds, args.lead_map)
            beats = None
            if args.annotations:
                beats = beat_times(rec, read_seconds)
                if beats is None and not warned_atr:
                    print(f'warning: {rec.name}: no {rec.name}.atr beat annotations; '
                          'drawing without them (said once)', file=sys.stderr)
                    warned_atr = True
        except BadRecord as e:
            bad(str(e))
            continue
        stem = rec.name
        if stem in used_names:  # same name in another folder: keep both
            stem = f'{record_base(rec.record.path).parent.name}-{stem}'
        used_names.add(stem)
        for layout in layouts:
            strip = rec
            if layout != 'clinical' and args.seconds is not None:
                strip = dataclasses.replace(rec, signal=rec.signal[:round(args.seconds * rec.fs)])
            if layout != '12x1' and rec.leads != LEADS:
                print(f'note: {rec.name}: {layout} skipped: {len(rec.leads)}-lead '
                      f"record ({','.join(rec.leads)}); it needs the 12 standard leads",
                      file=sys.stderr)
                continue
            try:
                fig = PLOTTERS[layout](strip, beats)
                target = out / f'{stem}-{layout}.png'
                # a Figure without pyplot: nothing to close
                save_figure(fig, target, args.dpi, close=False, facecolor='white')
            except BadRecord as e:
                bad(str(e))
                continue
            print(f'wrote {target}', flush=True)
            written.append(target)
    return written


if __name__ == '__main__':
    main()

"""visualize.py on real records from ../shared/data: the PNGs exist, have the
right size, are not blank, the clinical printout is at 25 mm/s and 10 mm/mV,
titles name the diagnoses, bad input is reported and skipped, and MIT-BIH
beat annotations are drawn."""
import dataclasses
import shutil

import matplotlib.image as mpimg
import numpy as np
import pytest
import wfdb

import utils
import visualize

DPI = 60  # small PNGs keep the tests fast; the clinical test uses a real dpi


def dark_fraction(img):
    """Share of pixels that are trace-dark (black ink, not grid or paper)."""
    return float((img[..., :3].max(axis=-1) < 0.35).mean())


def pink_mask(img):
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return (r > 0.8) & (r - g > 0.08) & (np.abs(g - b) < 0.08)


@pytest.fixture(scope='module')
def a0001(shared_data):
    return visualize.load_record(shared_data / 'cpsc2018_wfdb' / 'A0001.hea')


def test_clinical_a0001_scale_grid_title(a0001, tmp_path):
    assert a0001.signal.shape == (7500, 12) and a0001.fs == 500
    fig = visualize.plot_clinical(a0001)
    title = ' '.join(t.get_text() for t in fig.texts)
    assert 'A0001' in title and 'right bundle branch block' in title
    assert '74 y' in title and 'Male' in title and 'first 10.0 s of 15.0 s' in title

    dpi = 150
    fig.set_dpi(dpi)
    fig.canvas.draw()
    ax = fig.axes[0]
    o, s02, mv1 = ax.transData.transform([(0, 0), (0.2, 0), (0, 1)])
    px_per_mm = dpi / 25.4
    # 25 mm/s: 0.2 s is 5 mm; 10 mm/mV: 1 mV is 10 mm, twice 0.2 s.
    assert s02[0] - o[0] == pytest.approx(5 * px_per_mm, rel=1e-6)
    assert mv1[1] - o[1] == pytest.approx(10 * px_per_mm, rel=1e-6)
    assert s02[1] == pytest.approx(o[1]) and mv1[0] == pytest.approx(o[0])

    # Every trace of the 3x4 grid and the strip spans its 2.5 s / 10 s.
    spans = sorted(round(float(np.ptp(line.get_xdata())), 2) for line in ax.lines
                   if len(line.get_xdata()) > 100)
    assert spans == [2.5] * 12 + [10.0]

    out = tmp_path / 'c.png'
    utils.save_figure(fig, out, dpi, close=False, facecolor='white')  # visualize.py's call
    img = mpimg.imread(out)
    w_in, h_in = fig.get_size_inches()
    assert img.shape[:2] == (int(h_in * dpi), int(w_in * dpi))  # matplotlib truncates
    # The pink paper covers 10.4 s x 4 rows of 4 mV: 260 mm x 160 mm, true size.
    pink = pink_mask(img)
    # Grid lines run across the whole paper; pinkish text edges do not.
    cols = np.flatnonzero(pink.mean(axis=0) > 0.3)
    rows = np.flatnonzero(pink.mean(axis=1) > 0.3)
    assert cols[-1] - cols[0] + 1 == pytest.approx(260 * px_per_mm, abs=3)
    assert rows[-1] - rows[0] + 1 == pytest.approx(160 * px_per_mm, abs=3)
    assert pink.mean() > 0.15          # the 1 mm grid is drawn
    assert dark_fraction(img) > 0.01   # and so are the traces


def test_physionet_records_are_drawn_in_the_12x1_and_6x2_layouts(shared_data, tmp_path, capsys):
    ptbxl = shared_data / 'physionet2021' / 'HR06000.hea'    # PTB-XL, 500 Hz
    georgia = shared_data / 'physionet2021' / 'E07500.mat'   # Georgia
    written = visualize.main(['--record-paths', str(ptbxl), str(georgia),
                              '--out', str(tmp_path), '--dpi', str(DPI),
                              '--layouts', '12x1,6x2'])
    names = [p.name for p in written]
    assert names == ['HR06000-12x1.png', 'HR06000-6x2.png',
                     'E07500-12x1.png', 'E07500-6x2.png']
    printed = capsys.readouterr().out.splitlines()
    assert printed == [f'wrote {p}' for p in written]
    assert not list(tmp_path.glob('.*.tmp'))

    shapes = {}
    for path in written:
        img = mpimg.imread(path)
        shapes[path.name] = img.shape[:2]
        assert dark_fraction(img) > 0.005, path.name
    # 12x1 is tall (12 stacked leads), 6x2 is wide and lower.
    h, w = shapes['HR06000-12x1.png']
    assert h > w
    h2, w2 = shapes['HR06000-6x2.png']
    assert w2 > h2 and h2 < h


def test_every_lead_has_a_trace(a0001):
    fig = visualize.plot_12x1(a0001)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_ylabel().split('\n')[0] for ax in axes] == visualize.LEADS
    for ax, lead in zip(axes, range(12)):
        y = ax.lines[0].get_ydata()
        np.testing.assert_array_equal(y, a0001.signal[:, lead])
        lo, hi = ax.get_ylim()
        assert lo <= y.min() and y.max() <= hi     # nothing clipped
        assert ax.get_xlim() == (0, 15.0)
    assert 'right bundle branch block' in fig.get_suptitle()
    # Time runs at a fixed mm/s: the 15 s record is drawn wider than 10 s of it.
    first_10s = visualize.plot_12x1(dataclasses.replace(a0001, signal=a0001.signal[:5000]))
    assert fig.get_size_inches()[0] > first_10s.get_size_inches()[0]


def test_diagnosis_text_names_each_class_once_and_lists_unknown_codes():
    assert visualize.diagnosis_text(['59118001']) == 'right bundle branch block'
    # Two codes of one class name it once; unknown codes are listed as codes.
    assert visualize.diagnosis_text(['713427006', '59118001', '164934002']) == \
        'right bundle branch block; SNOMED-CT 164934002'
    assert visualize.diagnosis_text(['426783006', '164889003']) == \
        'sinus rhythm; atrial fibrillation'
    assert visualize.diagnosis_text([]) == 'no diagnosis in header'


def test_bad_inputs_are_named_and_skipped(shared_data, tmp_path, capsys):
    src = shared_data / 'cpsc2018_wfdb'
    # A truncated signal file and a header that is not a header.
    shutil.copy(src / 'A0001.hea', tmp_path / 'A0001.hea')
    (tmp_path / 'A0001.mat').write_bytes((src / 'A0001.mat').read_bytes()[:1000])
    (tmp_path / 'B0001.hea').write_text('this is not a WFDB header\n')
    (tmp_path / 'B0001.mat').write_bytes(b'\0' * 64)
    good = shared_data / 'physionet2021' / 'JS20000.hea'
    out = tmp_path / 'plots'
    args = ['--record-paths', str(tmp_path / 'A0001.hea'), str(tmp_path / 'B0001.hea'),
            str(tmp_path / 'missing.hea'), str(good), '--out', str(out),
            '--dpi', str(DPI), '--layouts', 'clinical']
    written = visualize.main(args)
    assert [p.name for p in written] == ['JS20000-clinical.png']
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith('error:')]
    assert len(err) == 3
    assert err[0].startswith('error: ') and 'missing.hea' in err[0]  # reported first
    assert any('A0001' in e for e in err) and any('B0001' in e for e in err)

    with pytest.raises(SystemExit, match='--strict'):
        visualize.main(args + ['--strict'])


def test_mitdb_100_is_drawn_with_its_beat_annotations(shared_data, tmp_path, capsys):
    base = shared_data / 'mitdb' / '100'
    written = visualize.main(['--record-paths', str(base), '--annotations', '--seconds', '10',
                              '--out', str(tmp_path), '--dpi', str(DPI)])
    assert [p.name for p in written] == ['100-12x1.png']
    err = capsys.readouterr().err
    assert 'note: 100: 6x2 skipped' in err and 'note: 100: clinical skipped' in err

    ann = wfdb.rdann(str(base), 'atr', sampto=3600)
    expected = [(s, sym) for s, sym in zip(ann.sample, ann.symbol) if sym in 'NA']
    assert len(expected) == 13  # 12 normal beats and one APC in the first 10 s

    rec = visualize.load_record(base, seconds=10)
    assert rec.leads == ['MLII', 'V5'] and rec.fs == 360 and len(rec.signal) == 3600
    assert rec.record.age == 69 and rec.record.sex == 'Male'
    beats = visualize.beat_times(rec, seconds=10)
    assert beats[1] == [sym for _, sym in expected]
    fig = visualize.plot_12x1(rec, beats)
    top = fig.axes[0]
    marks = {line.get_label(): line for line in top.lines if line.get_marker() == 'o'}
    assert sorted(marks) == ['A', 'N']
    for sym, line in marks.items():
        samples = [s for s, e in expected if e == sym]
        assert [round(float(x) * 360) for x in line.get_xdata()] == samples
        # Markers sit on the trace.
        np.testing.assert_allclose(line.get_ydata(), rec.signal[samples, 0])
    # An APC is coloured unlike a normal beat.
    assert marks['A'].get_markeredgecolor() != marks['N'].get_markeredgecolor()
    assert sorted(t.get_text() for t in top.texts) == sorted(sym for _, sym in expected)

    img = mpimg.imread(written[0])
    orange = (img[..., 0] > 0.85) & (img[..., 1] > 0.35) & (img[..., 1] < 0.65) & \
        (img[..., 2] < 0.25)
    assert orange.sum() > 5  # the APC's marker made it into the PNG


def test_clinical_annotations_resampled(shared_data, tmp_path, capsys):
    """A 12-lead record at 250 Hz with its own .atr: drawn at 10 s and true
    scale after resampling; beats marked on the rhythm strip; a second record
    without .atr gives one warning."""
    src = wfdb.rdrecord(str(shared_data / 'cpsc2018_wfdb' / 'A0001'))
    sig = src.p_signal[::2]  # 250 Hz; fine for a plotting test
    wfdb.wrsamp('R250', fs=250, units=src.units, sig_name=src.sig_name, p_signal=sig,
                fmt=['16'] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12,
                comments=['Age: 50', 'Sex: Female', 'Dx: 164889003,284470004'],
                write_dir=str(tmp_path))
    beats = np.arange(100, 2500, 250)
    wfdb.wrann('R250', 'atr', beats, ['N'] * 5 + ['V'] + ['N'] * 4, write_dir=str(tmp_path))
    for name in ('E07500', 'E07501'):  # Georgia records without .atr
        for ext in ('.hea', '.mat'):
            shutil.copy(shared_data / 'physionet2021' / (name + ext), tmp_path)

    written = visualize.main(['--record-paths', str(tmp_path / '*.hea'), '--annotations',
                              '--layouts', 'clinical', '--out', str(tmp_path / 'p'),
                              '--dpi', str(DPI)])
    assert [p.name for p in written] == ['E07500-clinical.png', 'E07501-clinical.png',
                                         'R250-clinical.png']
    err = capsys.readouterr().err
    assert err.count('warning:') == 1 and '.atr' in err

    rec = visualize.load_record(tmp_path / 'R250.hea')
    assert rec.fs == 500 and rec.record.fs == 250 and len(rec.signal) == 7500  # 15 s
    fig = visualize.plot_clinical(rec, visualize.beat_times(rec))
    text = ' '.join(t.get_text() for t in fig.texts)
    assert 'atrial fibrillation; premature atrial contraction' in text
    assert '50 y' in text and 'Female' in text and 'recorded at 250 Hz' in text
    ax = fig.axes[0]
    strip = [line for line in ax.lines if np.ptp(line.get_xdata()) > 9.9]
    assert len(strip) == 1
    marked = sorted(float(x) for line in ax.lines if line.get_marker() == 'o'
                    for x in line.get_xdata())
    assert marked == pytest.approx(beats / 250)
    assert [t.get_text() for t in ax.texts if t.get_text() in {'N', 'V'}] == \
        ['N'] * 5 + ['V'] + ['N'] * 4

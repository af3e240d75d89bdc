"""Speed, `python bench.py --only formats`: records.read_record on a 10-s
12-lead file of each hospital format against the format's own library (and
ecgdatakit where it is importable), with their agreement in uV beside it."""
import importlib.util
import sys
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pydicom.data
import pyedflib
import sierraecg

from benches.common import SHARED, timeit
from records import read_record
from records.formats import lead_name


def _format_cases(root, tmp):
    """[(format, file, the library's plain reader or None)]: ../shared's
    files, pydicom's test file and a CSV written here."""
    sig = np.round(np.sin(np.arange(5000)[:, None] / 40 + np.arange(12)) * 1000) / 1000
    pd.DataFrame({'time': np.arange(5000) / 500, **{f'V{k}' if k < 7 else f'lead{k}':
                  sig[:, k - 1] for k in range(1, 13)}}).to_csv(tmp / 'written.csv',
                                                                   index=False)

    def dicom(path):
        ds = pydicom.dcmread(str(path))
        return ds.waveform_array(0) / 1000  # uV -> mV (these files' units)

    def philips(path):
        e = sierraecg.read_file(str(path))
        return np.array([lead.samples for lead in e.leads]).T[:5000] * 5 / 1000

    def edf(path):
        with pyedflib.EdfReader(str(path)) as f:
            return np.column_stack([f.readSignal(i) for i in range(f.signals_in_file)])

    def csv(path):
        return pd.read_csv(path).to_numpy()[:, 1:7]

    return [('dicom', root / 'dicom_ecg' / 'converted' / 'ecgtoolkit_Example.dcm', dicom),
            ('dicom', Path(pydicom.data.get_testdata_file('waveform_ecg.dcm')), dicom),
            ('muse', root / 'ge_muse_xml' / 'guangxi_teaching_sinus_rhythm.xml', None),
            ('cardiosoft', root / 'ge_cardiosoft_xml' / 'ecgprocess_example-XML1.xml', None),
            ('philips', root / 'philips_sierra_xml' / '2020-5-18_15-48-11.xml', philips),
            ('aecg', root / 'hl7_aecg' / 'mortara_eli250_example_aecg.xml', None),
            ('scp', root / 'scp_ecg' / 'converted' / 'ecgtoolkit_Example.scp', None),
            ('ishne', root / 'ishne_holter' / 'ECG_P28.01.ecg', None),
            ('edf', root / 'edf' / 'converted' / 'contec_0000050.edf', edf),
            ('csv', tmp / 'written.csv', csv)]


def _ecgdatakit_reader():
    """ecgdatakit's reader (path -> samples x leads in mV; its lead labels in
    .labels), or None where it is not importable."""
    if importlib.util.find_spec('ecgdatakit') is None:
        return None
    import ecgdatakit
    warnings.filterwarnings('ignore', module='pydicom')

    def kit(path):
        rec = ecgdatakit.FileParser().parse(str(path))
        cols = []
        for lead in rec.leads:
            p = lead.to_physical()
            unit = (p.units or 'uV').lower()
            cols.append(np.asarray(p.samples, float) * {'mv': 1, 'v': 1e3}.get(unit, 1e-3))
        n = min(len(c) for c in cols)
        kit.labels = [lead.label for lead in rec.leads]  # to align with our lead order
        return np.column_stack([c[:n] for c in cols])
    return kit


def _format_row(fmt, path, readers, repeat):
    """One file: our read time, each reader's time and its largest |ours -
    theirs| in uV over the samples both return -> a table row."""
    rec = read_record(path)
    ours = rec.signal
    t_ours = timeit(lambda p=path: read_record(p).signal, repeat)
    row = {'format': fmt, 'file': path.name, 'ours_ms': round(t_ours * 1e3, 1)}
    for name, fn in readers.items():
        if fn is None:
            continue
        try:
            theirs = fn(path)
        except Exception as e:  # noqa: BLE001 (a library that cannot read the file)
            row[f'{name}_ms'] = f'fails: {type(e).__name__}'
            continue
        row[f'{name}_ms'] = round(timeit(lambda f=fn, p=path: f(p), repeat) * 1e3, 1)
        n, k = min(len(ours), len(theirs)), min(ours.shape[1], theirs.shape[1])
        mine = ours[:n, :k]
        if name == 'ecgdatakit':  # its lead order: align by lead name
            at = {lead_name(lab): j for j, lab in enumerate(fn.labels)}
            pairs = [(i, at[lead]) for i, lead in enumerate(rec.leads) if lead in at]
            mine = ours[:n, [i for i, _ in pairs]]
            theirs = theirs[:, [j for _, j in pairs]]
        row[f'{name}_max_uV'] = round(float(np.nanmax(np.abs(mine - theirs[:n, :mine.shape[
            1]]))) * 1e3, 2)
    return row


@contextmanager
def _budgets_off():
    """Every reader of records/formats/ without its declared-size checks
    (common._budget a no-op): what the budgets cost is the read time with
    them against without, side by side in this run."""
    mods = [m for name, m in sys.modules.items()
            if name.startswith('records.formats') and hasattr(m, '_budget')]
    saved = [m._budget for m in mods]
    for m in mods:
        m._budget = lambda *a, **k: None
    try:
        yield
    finally:
        for m, f in zip(mods, saved):
            m._budget = f


def _budget_cost(path, repeat):
    """(ms with the budget checks, ms without), best of `repeat` rounds that
    alternate the two, so a busy machine slows both alike."""
    on, off = float('inf'), float('inf')
    for _ in range(repeat):
        on = min(on, timeit(lambda: read_record(path).signal, 3))
        with _budgets_off():
            off = min(off, timeit(lambda: read_record(path).signal, 3))
    return on * 1e3, off * 1e3


def run(args):
    """Read time per 10-s 12-lead file of each hospital format: records.read_record
    (records/formats/, content sniffing included) against the library's plain call
    (pydicom, sierraecg, pyedflib, pandas; ecgdatakit for every format where it
    is importable, e.g. PYTHONPATH=/tmp/ecgdk), and their agreement: the
    largest |ours - theirs| in uV over the samples both return. Reads
    ../shared/data/formats and pydicom's waveform_ecg.dcm, and a CSV it writes
    in a temporary folder (removed at the end). budget_cost: the read time with
    the declared-size checks of records/limits.py against without them."""
    root = SHARED / 'formats'
    kit = _ecgdatakit_reader()
    out, rows = {}, []
    with tempfile.TemporaryDirectory(prefix='bench-formats-') as tmp:
        for fmt, path, lib in _format_cases(root, Path(tmp)):
            if not path.is_file():
                continue
            row = _format_row(fmt, path, {'lib': lib, 'ecgdatakit': kit}, 1 if args.quick else 5)
            on, off = _budget_cost(path, 1 if args.quick else 5)
            row['budget_cost'] = f'x{on / off:.3f}'
            rows.append(row)
            out[f'{fmt}_{path.stem}_ms'] = row['ours_ms']
            out[f'{fmt}_{path.stem}_budget_cost'] = round(on / off, 4)
    print(pd.DataFrame(rows).astype(object).fillna('-').to_string(index=False))
    return out

"""EDF, EDF+ and BDF (pyedflib)."""
import re
from pathlib import Path

import numpy as np
import pyedflib

from records.errors import RecordError
from records.formats.common import _budget, _sex, lead_name, record_name
from records.limits import READ_MAX_VALUES
from records.record import Record

# --------------------------------------------------------------------------
# EDF / EDF+ / BDF (pyedflib).

def read_edf(path):
    """EDF, EDF+ or BDF: the channels whose label names a lead ('ECG I',
    'EKG V1', 'II', ...) at their common rate; an unrecognised label at that
    rate stays as a channel without a lead (a generic 'ECG': --lead-map names
    it); channels at other rates (EEG, SpO2, ...) are ignored and named in
    rec.ignored. Samples are read on demand, physical units."""
    name = Path(path).stem
    try:
        f = pyedflib.EdfReader(str(path))
    except OSError as e:
        raise RecordError(name, f'{Path(path).name}: unreadable EDF ({e})') from None
    try:
        labels = [s.strip() for s in f.getSignalLabels()]
        rates = [float(r) for r in f.getSampleFrequencies()]
        units = [f.getPhysicalDimension(i).strip() or 'uV' for i in range(len(labels))]
        nsamp = list(f.getNSamples())
        sex = _sex(getattr(f, 'getSex', lambda: '')() or '')
        ids = [f.getPatientName(), f.getPatientCode()]
    except Exception as e:  # noqa: BLE001 (pyedflib raises many types for broken headers)
        f.close()
        raise RecordError(name, f'{Path(path).name}: unreadable EDF header ({e})') from None
    ecg = [i for i, lab in enumerate(labels) if lead_name(lab) or re.match(r'(?i)(ecg|ekg)',
                                                                             lab)]
    if not labels:
        f.close()
        raise RecordError(name, 'EDF without signals')
    pool = ecg or list(range(len(labels)))
    fs = max(set(rates[i] for i in pool), key=lambda r: sum(rates[i] == r for i in pool))
    chans = [i for i in range(len(labels)) if rates[i] == fs and
             not re.search(r'(?i)annotation', labels[i])]
    ignored = [labels[i] for i in range(len(labels)) if i not in chans]
    f.close()
    if not chans:
        raise RecordError(name, f'{Path(path).name}: EDF without a signal channel')
    _budget(name, path, fs=fs, leads=len(chans), what='EDF')  # read per window: no value cap
    n = min(nsamp[i] for i in chans)

    def read(a, b):
        if (b - a) * len(chans) > READ_MAX_VALUES:  # as a WFDB window: 256 x 500 kHz
            raise RecordError(name, f'{b - a} samples of {len(chans)} channels need '
                                    f'{(b - a) * len(chans)} values, over {READ_MAX_VALUES}')
        with pyedflib.EdfReader(str(path)) as g:
            return np.column_stack([g.readSignal(i, a, b - a) for i in chans])
    return Record(name=record_name(path, 'edf', ids), path=path, fs=fs, sig_len=n,
                  sig_names=[labels[i] for i in chans], units=[units[i] for i in chans],
                  reader=read, format='edf', leads=[lead_name(labels[i]) for i in chans],
                  sex=sex, files=[Path(path)], fmts=['edf'] * len(chans), ignored=ignored)

"""read_record: any file or WFDB record -> Record."""
import math
from pathlib import Path

from records import formats
from records.errors import RecordError
from records.leads import apply_lead_map
from records.limits import FS_RANGE
from records.record import Record
from records.wfdb import _read_cpsc_struct, _signal_reader, contained, header_path, read_header


def _no_lead_error(rec):
    """The refusal of a record none of whose channels names a lead."""
    names = ', '.join(rec.sig_names) or 'none'
    first = rec.sig_names[0] if rec.sig_names else 'ECG'
    return RecordError(rec.name, f'no ECG lead among the signals {names}; say which lead '
                                 f"each is with --lead-map, e.g. --lead-map '{first}=II'")


def read_record(path, allow_outside=False, lead_map=None, fs=None):
    """NAME(.hea/.mat/.dat) of a WFDB record, a CPSC2018 .mat, or a file of a
    hospital format (DICOM, GE MUSE/CardioSoft XML, Philips XML, HL7 aECG,
    SCP-ECG, ISHNE, EDF, CSV: records.formats, recognised by content) -> Record.
    lead_map: 'ECG=II,...' names generic channels; fs: a CSV's rate without
    a time column. Raises RecordError (see the module docstring), and only RecordError:
    whatever a damaged or hostile file makes a reader raise becomes one, and
    every file the record names lies in its own folder (see contained();
    allow_outside=True lifts that rule for a user's own folders)."""
    path = Path(path)
    try:
        return _read_record(path, allow_outside, lead_map, fs)
    except RecordError:
        raise
    except Exception as e:  # noqa: BLE001 (a bad file must not end a batch or a server)
        raise RecordError(path.stem, f'unreadable ({type(e).__name__}: {e})') from None


def _read_record(path, allow_outside, lead_map=None, fs=None):
    if path.is_file() and path.suffix.lower() not in ('.hea', '.mat', '.dat'):
        # The one containment rule, as for a WFDB header and a .mat: a
        # symlinked link.xml in a folder of records may point anywhere.
        contained(path, path.parent, path.stem, 'file', allow_outside)
        rec = apply_lead_map(formats.read(path, fs=fs), lead_map)
        if not (math.isfinite(rec.fs) and FS_RANGE[0] <= rec.fs <= FS_RANGE[1]):
            # whatever a reader let through: every later step divides by it
            raise RecordError(rec.name, f'sampling rate {rec.fs:g} Hz is outside '
                                        f'{FS_RANGE[0]:g}-{FS_RANGE[1]:g} Hz')
        if not any(rec.leads):
            raise _no_lead_error(rec)
        return rec
    hea = header_path(path)
    if path.suffix.lower() == '.mat' and not hea.exists():
        if not path.exists():
            raise RecordError(path.stem, f'no such file {path}')
        contained(path, path.parent, path.stem, 'file', allow_outside)
        if not path.is_file():
            raise RecordError(path.stem, f'{path.name} is not a regular file')
        return _read_cpsc_struct(path)
    hdr = read_header(hea, allow_outside)
    reader, limit = _signal_reader(hdr)
    rec = Record(name=hdr['name'], path=hea, fs=hdr['fs'], sig_len=hdr['sig_len'],
                 sig_names=hdr['sig_names'], units=hdr['units'], reader=reader, format='wfdb',
                 age=hdr['age'], sex=hdr['sex'], dx=hdr['dx'], comments=hdr['comments'],
                 files=[hea] + [hea.parent / f for f in dict.fromkeys(hdr['files'])],
                 fmts=hdr['fmts'], gains=hdr['gains'], baselines=hdr['baselines'], limit=limit)
    apply_lead_map(rec, lead_map)
    if not any(rec.leads):
        raise _no_lead_error(rec)
    return rec

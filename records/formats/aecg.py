"""HL7 annotated ECG (aECG, the FDA's format)."""
from pathlib import Path


from records.errors import RecordError
from records.formats.cardiosoft import _numbers
from records.formats.common import _age_between, _date, _num, _parse_xml, _record
from records.formats.common import _sex, _strip_ns, _text, record_name
from records.formats.muse import _stack
from records.measurements import VENDOR_CODES

# --------------------------------------------------------------------------
# HL7 aECG.


def read_aecg(path):
    """HL7 aECG (AnnotatedECG): the RHYTHM series' sequenceSet; the time
    sequence's increment (s or ms) gives the rate, each MDC_ECG_LEAD_*
    sequence's SLIST_PQ gives origin + scale x digits in their unit. The
    first global annotations give the cart's measurements; MDC_ECG_RHY and
    interpretation statements' display names give its statements."""
    root = _strip_ns(_parse_xml(path, 'aecg'))
    name = Path(path).stem
    series = [s for s in root.iter('series')]
    rhythm = [s for s in series if (s.find('code') is not None and
                                    s.find('code').get('code', '').upper() == 'RHYTHM')]
    if not (rhythm or series):
        raise RecordError(name, f'{Path(path).name}: aECG without a waveform series')
    ser = (rhythm or series)[0]
    fs, names, cols, units = None, [], [], []
    # the first sequenceSet; later ones repeat the leads (another time span)
    first = ser.find('.//sequenceSet')
    for seq in (first if first is not None else ser).iter('sequence'):
        code = (seq.find('code').get('code', '') if seq.find('code') is not None else '')
        val = seq.find('value')
        if val is None:
            continue
        if code.startswith('TIME_'):
            inc = val.find('increment')
            if inc is not None:
                step = _num(inc.get('value'))
                unit = (inc.get('unit') or 's').lower()
                if step:
                    fs = 1.0 / (step * {'s': 1, 'ms': 1e-3, 'us': 1e-6}.get(unit, 1))
            continue
        digits = val.find('digits')
        if digits is None:
            continue
        origin = val.find('origin')
        scale = val.find('scale')
        o = _num(origin.get('value')) if origin is not None else 0.0
        s = _num(scale.get('value')) if scale is not None else 1.0
        unit = (scale.get('unit') if scale is not None else None) or 'uV'
        cols.append(o + s * _numbers(digits.text, name, f'aECG {code}'))
        names.append(code)
        units.append(unit)
    if not cols:
        raise RecordError(name, f'{Path(path).name}: aECG rhythm series holds no lead sequence')
    if not fs:
        raise RecordError(name, f'{Path(path).name}: aECG without a time increment (rate)')
    meas, statements = {}, []
    for ann in root.iter('annotation'):
        code_el, val = ann.find('code'), ann.find('value')
        code = code_el.get('code', '') if code_el is not None else ''
        key = VENDOR_CODES['aecg'].get(code.upper())  # MDC_ECG_TIME_PD_QTc or _QTC
        if key and val is not None and key not in meas and _num(val.get('value')) is not None:
            meas[key] = _num(val.get('value'))
        elif val is not None and (code.startswith('MDC_ECG_RHY') or 'INTERPRETATION' in code
                                  or 'STATEMENT' in code):
            text = val.get('displayName') or (val.text or '').strip() or val.get('code')
            if text:
                statements.append(text.replace('MDC_ECG_RHY_', '').replace('_', ' ').lower()
                                  if text.startswith('MDC_') else text)
    person = root.find('.//subjectDemographicPerson')
    sex, age, ids = 'Unknown', float('nan'), []
    if person is not None:
        g = person.find('administrativeGenderCode')
        sex = _sex(g.get('code') if g is not None else '')
        born = person.find('birthTime')
        when = root.find('effectiveTime/center')
        when = root.find('effectiveTime/low') if when is None else when
        age = _age_between(_date(born.get('value') if born is not None else None),
                           _date(when.get('value') if when is not None else None))
        ids = [_text(person, 'name')]
    for ts in root.iter('trialSubject'):
        i = ts.find('id')
        if i is not None:
            ids.append(i.get('extension'))
    return _record(path, record_name(path, 'aecg', ids), fs,
                   _stack(cols, name, path), names, units, 'aecg', age, sex,
                   measurements=meas,
                   statements=list(dict.fromkeys(statements)))

"""Results back in HL7 FHIR R4: one scored record -> one Bundle (type
`collection`) of plain JSON dicts, for predict.py --fhir (NDJSON, a Bundle a
line) and the API (`Accept: application/fhir+json` on /v1/predict).

    import fhir_bundle
    model = fhir_bundle.model_info(run)              # a runs.Run, or any object with its fields
    b = fhir_bundle.record_bundle('A0001', {'RBBB': 0.94, ...}, model,
                                  measurements={'hr': 100.3, 'pr_ms': 168.0, ...},
                                  device_measurements={}, device_statements=[])
    line = fhir_bundle.ndjson_line(b)

A Bundle holds:
  - a DiagnosticReport: status `preliminary` (a model's reading, confirmed by
    nobody), code LOINC 11524-6 "EKG study", category v2-0074 EC, the
    classes decided present as `conclusionCode` (SNOMED CT, utils.CLASS_TO_SNOMED)
    and in words as `conclusion`, `issued` now, `result` -> every Observation;
    no `effectiveDateTime` (the exam's date is patient data and never leaves
    the file) and no `subject` unless the caller passes a reference;
  - Observations of measure.py's global figures (LOINC, UCUM), QTc by Bazett
    and by Fridericia under their own LOINC codes;
  - one Observation per class: the probability (UCUM '1'), positive/negative
    against the threshold, the threshold as a component;
  - the model as a Device: run name, the code's commit as version, the
    checkpoint's sha256, one threshold property per class, "synthetic" where
    the model was trained on synthetic data;
  - the cart's own figures and statements (records.formats: the device's
    algorithm, not ours) as Observations whose `method` says so.

The codes, with their sources, are in docs/fhir.md. Nothing here reads a
file or imports torch; the tests validate every Bundle with fhir.resources'
R4B models.
"""
import json
import math
import re
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone

import utils
from records.formats.common import without_staff_names
from records.measurements import BY_KEY

LOINC, SNOMED, UCUM = 'http://loinc.org', 'http://snomed.info/sct', 'http://unitsofmeasure.org'
V2_0074 = 'http://terminology.hl7.org/CodeSystem/v2-0074'
OBS_CATEGORY = 'http://terminology.hl7.org/CodeSystem/observation-category'
INTERPRETATION = 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation'
REPORT_CODE = {'system': LOINC, 'code': '11524-6', 'display': 'EKG study'}
MEDIA_TYPE = 'application/fhir+json'

# records.measurements key -> (LOINC code, LOINC display, UCUM code). Verified
# by LOINC's mod-10 check digit and the sources in docs/fhir.md.
UNITS = {'beats/min': '/min', 'ms': 'ms', 'degrees': 'deg'}
LOINC_CODES = {
    'hr': ('8867-4', 'Heart rate'),
    'pr_ms': ('8625-6', 'P-R Interval'),
    'qrs_ms': ('8633-0', 'QRS duration'),
    'qt_ms': ('8634-8', 'Q-T interval'),
    'qtc_ms': ('8636-3', 'Q-T interval corrected'),      # the cart's, by its own formula
    'qtc_bazett_ms': ('76635-2', 'Q-T interval corrected based on Bazett formula'),
    'qtc_fridericia_ms': ('76634-5', 'Q-T interval corrected based on Fridericia formula'),
    'p_axis': ('8626-4', 'P wave axis'),
    'qrs_axis': ('8632-2', 'QRS axis'),
    't_axis': ('8638-9', 'T wave axis'),
}
OURS = ('hr', 'pr_ms', 'qrs_ms', 'qt_ms', 'qtc_bazett_ms', 'qtc_fridericia_ms',
        'p_axis', 'qrs_axis', 't_axis')
OUR_METHOD = ('measure.py of ecg-diagnosis: global measurement on the median beat '
              '(this software, not the cart)')
CART_METHOD = ("the cart's own reading (the recording device's algorithm, as stored in "
               "its file; not this model's)")
MODEL_METHOD = 'ecg-diagnosis deep-learning model: probability against its tuned threshold'
SYNTHETIC_NOTE = 'synthetic: trained on synthetic data, not a diagnostic model'
# A reference the caller may pass as the subject; nothing else is accepted.
SUBJECT = re.compile(r'(Patient|Group|Device|Location)/[A-Za-z0-9\-.]{1,64}')
# A confirming or reading clinician's name is personal data: keep the words
# before it, drop the name ("Confirmed by [name removed]", the readers' own
# wording: records.formats.common drops it first; this is the last gate
# before a result leaves).
def check_subject(text):
    """A subject reference ('Patient/123') -> itself; ValueError otherwise."""
    if text is None or SUBJECT.fullmatch(text):
        return text
    raise ValueError(f'subject {text!r}: give a relative reference such as Patient/123 '
                     '(Patient, Group, Device or Location; id of letters, digits, - and .)')


def now():
    return datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def _number(v):
    """A finite float, or None (NaN, None, a string that is no number)."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _quantity(value, ucum):
    return {'value': value, 'unit': ucum, 'system': UCUM, 'code': ucum}


def _ref(entry):
    return {'reference': entry['fullUrl']}


def _entry(resource):
    return {'fullUrl': f'urn:uuid:{uuid.uuid4()}', 'resource': resource}


def model_info(run):
    """A runs.Run (or anything with its fields) -> what the Device says."""
    return {'name': run.name, 'sha256': run.sha256, 'synthetic': bool(run.synthetic),
            'version': getattr(run, 'commit', None) or 'unknown',
            'classes': list(run.classes),
            'thresholds': [float(t) for t in run.thresholds]}


def device(model):
    """The model and its thresholds as a Device."""
    props = [{'type': {'text': f'decision threshold {c} '
                               f'(SNOMED CT {utils.CLASS_TO_SNOMED.get(c)})'},
              'valueQuantity': [_quantity(round(float(t), 6), '1')]}
             for c, t in zip(model['classes'], model['thresholds'])]
    res = {'resourceType': 'Device', 'status': 'active',
           'manufacturer': 'ecg-diagnosis (open-source reference implementation)',
           'deviceName': [{'name': model['name'], 'type': 'model-name'}],
           'type': {'text': 'ECG diagnosis software: deep-learning model (1D ResNet)'},
           'version': [{'type': {'text': 'code commit'}, 'value': str(model['version'])}],
           'identifier': [{'type': {'text': 'checkpoint sha256'}, 'value': model['sha256']}],
           'property': props}
    if model['synthetic']:
        res['property'].append({'type': {'text': 'synthetic'},
                                'valueCode': [{'text': SYNTHETIC_NOTE}]})
        res['note'] = [{'text': SYNTHETIC_NOTE}]
    return res


def _observation(code, value, method, subject, issued, dev=None, text=None):
    """One preliminary EKG Observation; value: a valueX dict item."""
    res = {'resourceType': 'Observation', 'status': 'preliminary',
           'category': [{'coding': [{'system': OBS_CATEGORY, 'code': 'procedure',
                                     'display': 'Procedure'}]}],
           'code': dict(code, **({'text': text} if text else {})),
           'issued': issued, 'method': {'text': method}, **value}
    if subject:
        res['subject'] = {'reference': subject}
    if dev:
        res['device'] = _ref(dev)
    return res


def measurement(key, value, method, subject, issued):
    """One global figure (records.measurements key) -> an Observation."""
    loinc, display = LOINC_CODES[key]
    return _observation({'coding': [{'system': LOINC, 'code': loinc, 'display': display}]},
                        {'valueQuantity': _quantity(round(value, 1), UNITS[BY_KEY[key].unit])},
                        method, subject, issued, text=BY_KEY[key].name)


def class_observation(cls, prob, threshold, dev, subject, issued):
    """One class's probability, decided against its threshold."""
    present = bool(utils.decide(prob, threshold))
    code = {'coding': [{'system': SNOMED, 'code': utils.CLASS_TO_SNOMED[cls],
                        'display': utils.CLASS_NAMES.get(cls, cls)}]}
    name = utils.CLASS_NAMES.get(cls, cls)
    res = _observation(code, {'valueQuantity': _quantity(round(prob, 6), '1')}, MODEL_METHOD,
                       subject, issued, dev, text=f'probability of {name}')
    res['interpretation'] = [{'coding': [{'system': INTERPRETATION,
                                          'code': 'POS' if present else 'NEG',
                                          'display': 'Positive' if present else 'Negative'}],
                              'text': 'present' if present else 'absent'}]
    res['component'] = [{'code': {'text': 'decision threshold'},
                         'valueQuantity': _quantity(round(float(threshold), 6), '1')}]
    return res


def record_bundle(record, probabilities, model, measurements=None, device_measurements=None,
                  device_statements=(), subject=None, issued=None, record_sha256=None):
    """One scored record -> its Bundle (a JSON-ready dict).

    record: its name (a pseudonym where the file's name held identifiers);
    probabilities: {class: p} over model['classes']; model: model_info();
    measurements: measure.py's figures by key (None/NaN where not measured);
    device_measurements / device_statements: the cart's (records.Record's);
    subject: a reference ('Patient/123') or None; issued: an instant (now)."""
    subject, issued = check_subject(subject), issued or now()
    dev = _entry(device(model))
    obs = []
    for key in OURS:
        v = _number((measurements or {}).get(key))
        if v is not None:
            obs.append(_entry(measurement(key, v, OUR_METHOD, subject, issued)))
    present = []
    for cls, th in zip(model['classes'], model['thresholds']):
        p = _number(probabilities.get(cls))
        if p is None:
            continue
        obs.append(_entry(class_observation(cls, p, th, dev, subject, issued)))
        if utils.decide(p, th):
            present.append(cls)
    for key, value in (device_measurements or {}).items():
        v = _number(value)
        if key in LOINC_CODES and v is not None:
            obs.append(_entry(measurement(key, v, CART_METHOD, subject, issued)))
    for text in device_statements or ():
        if without_staff_names(text):
            obs.append(_entry(_observation(
                {'text': "the cart's interpretation statement"},
                {'valueString': without_staff_names(text)}, CART_METHOD, subject, issued)))
    report = report_resource(present, model, obs, subject, issued)
    ident = [{'type': {'text': 'record'}, 'value': str(record)}]
    if record_sha256:
        ident.append({'type': {'text': "sha256 of the record's files"}, 'value': record_sha256})
    report['identifier'] = ident
    return {'resourceType': 'Bundle', 'type': 'collection', 'timestamp': issued,
            'identifier': ident[0], 'entry': [_entry(report), *obs, dev]}


def report_resource(present, model, obs, subject, issued):
    """The DiagnosticReport over a record's Observations."""
    words = ', '.join(utils.CLASS_NAMES.get(c, c) for c in present) or \
        'no class above its threshold'
    lead = (f"{SYNTHETIC_NOTE.capitalize()}. " if model['synthetic'] else '') + \
        f"Model {model['name']} (preliminary, not confirmed by a physician): "
    res = {'resourceType': 'DiagnosticReport', 'status': 'preliminary',
           'category': [{'coding': [{'system': V2_0074, 'code': 'EC',
                                     'display': 'Electrocardiac (e.g., EKG, EEC, Holter)'}]}],
           'code': {'coding': [REPORT_CODE], 'text': 'EKG study'},
           'issued': issued, 'result': [_ref(o) for o in obs],
           'conclusion': lead + words,
           'conclusionCode': [{'coding': [{'system': SNOMED, 'code': utils.CLASS_TO_SNOMED[c],
                                           'display': utils.CLASS_NAMES.get(c, c)}]}
                              for c in present]}
    if not res['conclusionCode']:
        del res['conclusionCode']
    if subject:
        res['subject'] = {'reference': subject}
    return res


# --------------------------------------------------------------------------
# The two callers' shapes.

def row_bundle(row, model, subject=None, issued=None):
    """A row of predict.py --records (score_<class>, measure.py's keys,
    device_<key>, device_statements joined by ' | ') -> its Bundle."""
    dev = {k[len('device_'):]: v for k, v in row.items()
           if k.startswith('device_') and k != 'device_statements'}
    statements = [s for s in str(row.get('device_statements') or '').split(' | ') if s]
    return record_bundle(row['record'], {c: row.get(f'score_{c}') for c in model['classes']},
                         model, {k: row.get(k) for k in OURS}, dev, statements,
                         subject, issued)


def result_bundle(res, model, subject=None, issued=None):
    """One record of the API's /v1/predict answer (serve.record_result) -> its Bundle."""
    glob = (res.get('measurements') or {}).get('global') or {}
    return record_bundle(res['record'], {c['code']: c['probability'] for c in res['classes']},
                         model, glob, res.get('device_measurements'),
                         res.get('device_statements'), subject, issued,
                         res.get('record_sha256'))


def collection(bundles, problems=(), issued=None):
    """The API's answer: a collection Bundle of the records' Bundles, and an
    OperationOutcome naming the files that could not be read."""
    issued = issued or now()
    entries = [_entry(b) for b in bundles]
    if problems:
        entries.append(_entry({'resourceType': 'OperationOutcome', 'issue': [
            {'severity': 'error', 'code': 'processing', 'diagnostics': f'{f}: {why}'}
            for f, why in problems]}))
    return {'resourceType': 'Bundle', 'type': 'collection', 'timestamp': issued,
            'entry': entries}


def ndjson_line(bundle):
    return json.dumps(bundle, ensure_ascii=False, separators=(',', ':')) + '\n'


@contextmanager
def ndjson_writer(path):
    """Yields add(bundle), which writes one line; the file appears under
    `path` when the block ends (atomically), and not at all on an error.
    path None: add does nothing."""
    if path is None:
        yield lambda bundle: None
        return
    with utils.atomic_path(path) as tmp, open(tmp, 'w', encoding='utf-8') as f:
        yield lambda bundle: f.write(ndjson_line(bundle))

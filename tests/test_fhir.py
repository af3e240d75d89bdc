"""FHIR R4 results (fhir_bundle.py): predict.py --fhir (NDJSON, a Bundle a
record) and the API's `Accept: application/fhir+json`. Every Bundle parses
back and validates with fhir.resources' R4B models and round-trips through
them; the codes are the project's (SNOMED CT from utils, LOINC and UCUM from
fhir_bundle's table); no patient or staff identifier of the files (a MUSE XML
and a DICOM file that carry a name, an ID, a birth date and a physician's
name) reaches any output; a subject appears only when the caller gives one.

The model is web_helpers' tiny random ResNet-18 on 2-s windows: these tests
check the output, not the model's accuracy.
"""
import json

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from helpers import predict_records
from format_writers import DOCTOR, SECRETS, digital_12, muse_xml, write_dicom
from web_helpers import RUN, TOKEN, start

import fhir_bundle
import utils
from utils import CLASSES

FHIR = fhir_bundle.MEDIA_TYPE
STAFF = f'Confirmed by {DOCTOR}, Zed M.D. (12) on 3/4/2015'


@pytest.fixture(scope='module')
def root(api_root):
    return api_root


@pytest.fixture(scope='module')
def identified(tmp_path_factory):
    """Two files that carry identifiers in every field the format has, a
    confirming physician's name among the MUSE statements; their own file
    names are neutral."""
    d = tmp_path_factory.mktemp('identified')
    xml = muse_xml(digital_12()[:, [0, 1, 6, 7, 8, 9, 10, 11]]).replace(
        '</Diagnosis>', f'<DiagnosisStatement><StmtText>{STAFF}</StmtText>'
        '</DiagnosisStatement></Diagnosis>')
    (d / 'rest1.xml').write_text(xml)
    write_dicom(d / 'rest2.dcm', digital_12(seed=1), 500)
    return [d / 'rest1.xml', d / 'rest2.dcm']


def resources(bundle):
    return [e['resource'] for e in bundle['entry']]


def validated(bundle):
    """The Bundle through fhir.resources' R4B model and back: it must
    validate, and its JSON must come back unchanged."""
    model = Bundle.model_validate(bundle)
    back = json.loads(model.model_dump_json())
    assert Bundle.model_validate(back) == model
    assert json.loads(json.dumps(back)) == json.loads(json.dumps(bundle))
    return model


def run_predict(root, paths, out, *extra):
    return predict_records(root / 'models' / RUN / 'best.pt', *paths,
                           extra=['--root', str(root), '--fhir', str(out),
                                  '--out', str(out.with_suffix('.csv')), *extra])


def test_predict_writes_one_valid_bundle_a_record_without_identifiers(root, identified,
                                                                      tmp_path):
    out = tmp_path / 'out.ndjson'
    df = run_predict(root, identified, out)
    text = out.read_text(encoding='utf-8')
    lines = text.splitlines()
    assert len(lines) == len(df) == 2
    for secret in SECRETS:
        assert secret not in text
        assert secret not in out.with_suffix('.csv').read_text(encoding='utf-8')
    assert '"subject"' not in text and 'effective' not in text and 'birth' not in text.lower()
    run_sha = utils.sha256_file(root / 'models' / RUN / 'best.pt')
    th = json.loads((root / 'results' / RUN / 'thresholds.json').read_text())['thresholds']
    for line, (_, row) in zip(lines, df.iterrows()):
        bundle = json.loads(line)
        validated(bundle)
        assert bundle['type'] == 'collection' and bundle['identifier']['value'] == row['record']
        report, *obs, device = resources(bundle)
        assert report['resourceType'] == 'DiagnosticReport' and report['status'] == 'preliminary'
        assert report['code']['coding'][0] == {'system': 'http://loinc.org', 'code': '11524-6',
                                              'display': 'EKG study'}
        assert 'effectiveDateTime' not in report and report['issued'].endswith('Z')
        urls = {e['fullUrl'] for e in bundle['entry']}
        assert [r['reference'] for r in report['result']] == [e['fullUrl'] for e in
                                                               bundle['entry'][1:-1]]
        assert all(r['reference'] in urls for r in report['result'])
        decided = [c for c in row['diagnoses'].split(';') if c]
        assert [c['coding'][0]['code'] for c in report.get('conclusionCode', [])] == \
            [utils.CLASS_TO_SNOMED[c] for c in decided]
        by_code = {o['code']['coding'][0]['code']: o for o in obs if o['code'].get('coding')}
        for c in CLASSES:
            o = by_code[utils.CLASS_TO_SNOMED[c]]
            assert o['valueQuantity']['value'] == pytest.approx(row[f'score_{c}'], abs=1e-6)
            assert o['valueQuantity']['code'] == '1'
            assert o['component'][0]['valueQuantity']['value'] == pytest.approx(th[c], abs=1e-6)
            assert o['interpretation'][0]['coding'][0]['code'] == \
                ('POS' if c in decided else 'NEG')
            assert o['device'] == {'reference': bundle['entry'][-1]['fullUrl']}
        assert device['resourceType'] == 'Device'
        assert device['deviceName'] == [{'name': RUN, 'type': 'model-name'}]
        assert device['identifier'][0]['value'] == run_sha
        # ours, in LOINC and UCUM, equal to the CSV's columns
        ours = [o for o in obs if o['method']['text'] == fhir_bundle.OUR_METHOD]
        for o in ours:
            key = next(k for k, (code, _) in fhir_bundle.LOINC_CODES.items()
                       if code == o['code']['coding'][0]['code'])
            assert o['valueQuantity']['value'] == pytest.approx(row[key], abs=0.051)
            assert o['valueQuantity']['system'] == 'http://unitsofmeasure.org'
        # the cart's reading: apart, and said to be the cart's
        carts = [o for o in obs if o['method']['text'] == fhir_bundle.CART_METHOD]
        assert carts and all("cart's" in o['method']['text'] for o in carts)
    first = json.loads(lines[0])
    statements = [o['valueString'] for o in resources(first) if 'valueString' in o]
    assert 'Sinus rhythm' in statements
    assert any(s.startswith('Confirmed by') for s in statements)   # the statement stays
    cart_hr = [o for o in resources(first)[1:-1] if o['method']['text'] ==
               fhir_bundle.CART_METHOD and o['code'].get('coding', [{}])[0].get('code') ==
               '8867-4']
    assert cart_hr and cart_hr[0]['valueQuantity'] == {
        'value': 72.0, 'unit': '/min', 'system': 'http://unitsofmeasure.org', 'code': '/min'}


def test_every_real_export_scored_gets_a_valid_bundle(root, shared_data, tmp_path):
    """predict.py --records ../shared/data/formats/**/* --fhir: one valid Bundle
    for each record scored; the cart's reading is there where the CSV has it."""
    out = tmp_path / 'formats.ndjson'
    df = run_predict(root, [shared_data / 'formats' / '**' / '*'], out)
    lines = out.read_text(encoding='utf-8').splitlines()
    assert len(lines) == len(df) >= 10
    for line, (_, row) in zip(lines, df.iterrows()):
        bundle = json.loads(line)
        validated(bundle)
        assert bundle['identifier']['value'] == row['record']
        carts = [r for r in resources(bundle) if r.get('method', {}).get('text') ==
                 fhir_bundle.CART_METHOD]
        has_cart = any(str(v) not in ('', 'nan') for k, v in row.items()
                       if k.startswith('device_'))
        assert bool(carts) == has_cart, row['record']


def test_fhir_subject_adds_exactly_that_subject(root, identified, tmp_path):
    out = tmp_path / 'subject.ndjson'
    run_predict(root, identified[:1], out, '--fhir-subject', 'Patient/123')
    bundle = json.loads(out.read_text())
    validated(bundle)
    report, *obs, device = resources(bundle)
    assert report['subject'] == {'reference': 'Patient/123'}
    assert all(o['subject'] == {'reference': 'Patient/123'} for o in obs)
    assert 'subject' not in device and 'patient' not in device
    assert out.read_text().count('"subject"') == 1 + len(obs)
    for bad in ('Patient/12 3', 'http://x/Patient/1', 'Smith'):
        with pytest.raises(SystemExit, match='fhir-subject'):
            run_predict(root, identified[:1], tmp_path / 'bad.ndjson', '--fhir-subject', bad)
    assert not (tmp_path / 'bad.ndjson').exists()
    with pytest.raises(SystemExit, match='segments'):
        run_predict(root, identified[:1], tmp_path / 'seg.ndjson', '--segments')


def test_a_bundle_names_qtc_formulas_apart_and_a_synthetic_model():
    model = {'name': 'SYNTH-all-s42-f7', 'sha256': 'ab' * 32, 'synthetic': True,
             'version': 'abc1234', 'classes': ['SNR', 'RBBB'], 'thresholds': [0.3, 0.5]}
    b = fhir_bundle.record_bundle(
        'A0001', {'SNR': 0.1, 'RBBB': 0.9}, model,
        {'hr': 100.3, 'qtc_bazett_ms': 458.0, 'qtc_fridericia_ms': 420.0, 'pr_ms': float('nan')},
        {'qtc_ms': 417.0}, ['Sinus rhythm', 'Reviewed by Someone, MD'])
    validated(b)
    report, *obs, device = resources(b)
    codes = [o['code'].get('coding', [{}])[0].get('code') for o in obs]
    assert codes[:3] == ['8867-4', '76635-2', '76634-5']   # HR, QTc Bazett, QTc Fridericia
    assert '8625-6' not in codes                           # PR not measured: no Observation
    assert codes.count('8636-3') == 1                      # the cart's QTc, formula its own
    assert [c['coding'][0]['code'] for c in report['conclusionCode']] == ['59118001']
    assert report['conclusion'].startswith('Synthetic: trained on synthetic data')
    assert device['note'] == [{'text': fhir_bundle.SYNTHETIC_NOTE}]
    assert [p['valueQuantity'][0]['value'] for p in device['property'][:2]] == [0.3, 0.5]
    assert 'Someone' not in json.dumps(b)


def test_api_answers_fhir_on_accept(root, identified):
    url, svc, stop = start(root)
    files = [('files', (p.name, p.read_bytes())) for p in identified]
    try:
        with httpx.Client(base_url=url, timeout=60,
                          headers={'Authorization': f'Bearer {TOKEN}'}) as client:
            r = client.post('/v1/predict', files=files, headers={'Accept': FHIR})
            plain = client.post('/v1/predict', files=files)
            sub = client.post('/v1/predict', files=files[:1], data={'fhir_subject': 'Patient/9'},
                              headers={'Accept': f'{FHIR}, application/json;q=0.5'})
            bad = client.post('/v1/predict', files=files[:1], data={'fhir_subject': 'Mr X'},
                              headers={'Accept': FHIR})
    finally:
        stop()
    assert r.status_code == 200, r.text
    assert r.headers['content-type'].startswith(FHIR)
    for secret in SECRETS:
        assert secret not in r.text and secret not in plain.text and secret not in sub.text
    outer = r.json()
    validated(outer)
    assert outer['resourceType'] == 'Bundle' and outer['type'] == 'collection'
    inner = resources(outer)
    assert [b['resourceType'] for b in inner] == ['Bundle', 'Bundle']
    assert '"subject"' not in r.text
    records = {x['record']: x for x in plain.json()['records']}
    assert plain.headers['content-type'].startswith('application/json')
    for b in inner:
        report, *obs, device = resources(b)
        res = records[b['identifier']['value']]
        assert report['identifier'][1]['value'] == res['record_sha256']
        assert [c['coding'][0]['code'] for c in report.get('conclusionCode', [])] == \
            [utils.CLASS_TO_SNOMED[c] for c in res['diagnoses']]
        assert device['identifier'][0]['value'] == svc.info.sha256
    assert sub.status_code == 200 and sub.headers['content-type'].startswith(FHIR)
    one = resources(sub.json())[0]
    assert all(x['subject'] == {'reference': 'Patient/9'} for x in resources(one)[:-1])
    assert bad.status_code == 400 and bad.json()['error'] == 'bad_subject'

"""Every string of the web app (app.py) and its PDF report, in English, French
and Arabic: one table, TEXT[key][language]. tests/test_app.py checks that every
key exists in every language with the same {placeholders}.

    from web.app_text import t
    t('ar', 'explained_in', seconds=4.2)

Class names and the two texts per class (a brief one for the public, the
criterion a cardiologist reads the tracing for) are keys too:
'class_<C>', 'public_<C>', 'clinical_<C>' for C in utils.CLASSES.
"""
import re
import string

LANGUAGES = {'en': 'English', 'fr': 'Français', 'ar': 'العربية'}
RTL = {'ar'}

TEXT = {
    'title': {'en': 'ECG diagnosis', 'fr': 'Diagnostic ECG', 'ar': 'تشخيص تخطيط القلب'},
    'disclaimer': {
        'en': 'For research use only. Not a medical device: it does not replace a '
              "physician's reading of the ECG.",
        'fr': "Usage de recherche uniquement. Ce n'est pas un dispositif médical : il ne "
              "remplace pas la lecture de l'ECG par un médecin.",
        'ar': 'للاستخدام البحثي فقط. ليس جهازاً طبياً ولا يغني عن قراءة الطبيب لتخطيط القلب.'},
    'demo_banner': {
        'en': 'Demonstration model, trained on synthetic ECGs: not a diagnostic model.',
        'fr': 'Modèle de démonstration, entraîné sur des ECG synthétiques : pas un modèle '
              'diagnostique.',
        'ar': 'نموذج للعرض فقط، دُرِّب على تخطيطات قلب اصطناعية: ليس نموذجاً تشخيصياً.'},
    'language': {'en': 'Language', 'fr': 'Langue', 'ar': 'اللغة'},
    'model': {'en': 'Model', 'fr': 'Modèle', 'ar': 'النموذج'},
    'no_model': {
        'en': 'No trained model found in {folder}. Make one with `make demo` (about 13 '
              'minutes on a CPU), or start the app with `streamlit run app.py -- '
              '--model-path PATH/best.pt`.',
        'fr': 'Aucun modèle entraîné dans {folder}. Créez-en un avec `make demo` (environ '
              '13 minutes sur un CPU), ou lancez `streamlit run app.py -- --model-path '
              'CHEMIN/best.pt`.',
        'ar': 'لا يوجد نموذج مدرَّب في {folder}. أنشئ واحداً بالأمر `make demo` (نحو 13 '
              'دقيقة على المعالج) أو شغّل `streamlit run app.py -- --model-path PATH/best.pt`.'},
    'model_error': {'en': 'Cannot load {path}: {reason}',
                    'fr': 'Impossible de charger {path} : {reason}',
                    'ar': 'تعذّر تحميل {path}: {reason}'},
    'model_card': {'en': 'Model card', 'fr': 'Fiche du modèle', 'ar': 'بطاقة النموذج'},
    'card_database': {'en': 'Database', 'fr': 'Base de données', 'ar': 'قاعدة البيانات'},
    'card_leads': {'en': 'Leads', 'fr': 'Dérivations', 'ar': 'الاتجاهات'},
    'card_arch': {'en': 'Architecture', 'fr': 'Architecture', 'ar': 'البنية'},
    'card_epochs': {'en': 'Epochs (best)', 'fr': 'Époques (meilleure)', 'ar': 'الحقب (الأفضل)'},
    'card_window': {'en': 'Input window', 'fr': "Fenêtre d'entrée", 'ar': 'نافذة الإدخال'},
    'card_test': {'en': 'Test fold', 'fr': 'Pli de test', 'ar': 'طيّة الاختبار'},
    'card_auc': {'en': 'Macro AUC (95% CI)', 'fr': 'AUC macro (IC 95 %)',
                 'ar': 'المساحة تحت المنحنى الكلية (فاصل ثقة 95%)'},
    'card_f1': {'en': 'Macro F1 (95% CI)', 'fr': 'F1 macro (IC 95 %)',
                'ar': 'مقياس F1 الكلي (فاصل ثقة 95%)'},
    'card_not_evaluated': {'en': 'not evaluated (run predict.py on this run)',
                           'fr': 'non évalué (lancez predict.py sur ce run)',
                           'ar': 'لم يُقيَّم (شغّل predict.py على هذا التشغيل)'},
    'card_thresholds': {'en': 'Thresholds', 'fr': 'Seuils', 'ar': 'العتبات'},
    'leads_all': {'en': 'all 12', 'fr': 'les 12', 'ar': 'الاثنا عشر كلها'},
    'val_fold': {'en': 'validation fold {folds}', 'fr': 'le pli de validation {folds}',
                 'ar': 'طيّة التحقق {folds}'},
    'thr_tuned': {'en': 'tuned on {where} ({path})', 'fr': 'réglés sur {where} ({path})',
                  'ar': 'ضُبطت على {where} ({path})'},
    'thr_default': {
        'en': '0.5 for every class: no thresholds file for this model (run predict.py)',
        'fr': '0,5 pour chaque classe : pas de fichier de seuils pour ce modèle (lancez '
              'predict.py)',
        'ar': '0.5 لكل فئة: لا يوجد ملف عتبات لهذا النموذج (شغّل predict.py)'},
    'bare_model': {
        'en': 'A bare state dict (the study\'s own weights format): it records no database, '
              'epochs or thresholds; 12 leads assumed, thresholds 0.5.',
        'fr': "Un state dict nu (le format de poids de l'étude) : ni base, ni époques, ni "
              'seuils ; 12 dérivations supposées, seuils 0,5.',
        'ar': 'قاموس أوزان مجرّد (صيغة أوزان الدراسة الأصلية): بلا قاعدة بيانات أو حقب أو '
              'عتبات؛ يُفترض 12 اتجاهاً وعتبة 0.5.'},
    'source': {'en': 'Input', 'fr': 'Entrée', 'ar': 'المُدخل'},
    'source_upload': {'en': 'Upload records', 'fr': 'Téléverser des enregistrements',
                      'ar': 'رفع تسجيلات'},
    'source_example': {'en': 'Try an example', 'fr': 'Essayer un exemple', 'ar': 'جرّب مثالاً'},
    'upload_label': {
        'en': 'Records: .hea with its signal file(s) (.mat, .dat, ...), an original CPSC2018 '
              '.mat, a cart\'s export (DICOM, GE MUSE or CardioSoft XML, Philips XML, HL7 '
              'aECG, SCP-ECG, ISHNE, EDF, CSV), or a .zip of them',
        'fr': 'Enregistrements : .hea avec son ou ses fichiers de signal (.mat, .dat, ...), '
              'un .mat original de CPSC2018, un export d\'appareil (DICOM, XML GE MUSE ou '
              'CardioSoft, XML Philips, HL7 aECG, SCP-ECG, ISHNE, EDF, CSV), ou un .zip',
        'ar': 'التسجيلات: ملف ‎.hea‎ مع ملفات الإشارة (‎.mat‎، ‎.dat‎...) أو ملف ‎.mat‎ أصلي من '
              'CPSC2018 أو ملف مُصدَّر من جهاز (DICOM، ‏XML من GE MUSE أو CardioSoft، ‏XML من '
              'Philips، ‏HL7 aECG، ‏SCP-ECG، ‏ISHNE، ‏EDF، ‏CSV) أو ملف ‎.zip‎'},
    'example_label': {'en': 'Synthetic example record (one per class, generated now)',
                      'fr': 'Enregistrement synthétique (un par classe, généré à la demande)',
                      'ar': 'تسجيل اصطناعي (واحد لكل فئة، يُولَّد الآن)'},
    'waiting': {'en': 'Upload a record or try an example.',
                'fr': 'Téléversez un enregistrement ou essayez un exemple.',
                'ar': 'ارفع تسجيلاً أو جرّب مثالاً.'},
    'bad_file': {'en': '{file}: {kind} ({reason})', 'fr': '{file} : {kind} ({reason})',
                 'ar': '{file}: {kind} ({reason})'},
    # The kind of an upload problem, in words; the technical reason (from
    # records/ or web/clinic.py, in English) follows it in brackets.
    'problem_missing': {'en': 'a signal file is missing', 'fr': 'un fichier de signal manque',
                        'ar': 'ملف الإشارة مفقود'},
    'problem_truncated': {'en': 'the file is truncated', 'fr': 'le fichier est tronqué',
                          'ar': 'الملف مقطوع'},
    'problem_corrupt': {'en': 'the file is corrupt or unreadable',
                        'fr': 'le fichier est corrompu ou illisible',
                        'ar': 'الملف تالف أو غير قابل للقراءة'},
    'problem_empty': {'en': 'the record is empty', 'fr': "l'enregistrement est vide",
                      'ar': 'التسجيل فارغ'},
    'problem_leads': {'en': "the model's leads cannot be obtained from this record",
                      'fr': "les dérivations du modèle ne peuvent pas être obtenues de cet "
                            "enregistrement",
                      'ar': 'لا يمكن الحصول على اتجاهات النموذج من هذا التسجيل'},
    'problem_nan': {'en': 'missing (NaN) samples in the window used',
                    'fr': 'échantillons manquants (NaN) dans la fenêtre utilisée',
                    'ar': 'عينات مفقودة (NaN) في النافذة المستخدمة'},
    'problem_too_large': {'en': 'the file is over the size limit',
                          'fr': 'le fichier dépasse la taille maximale',
                          'ar': 'الملف يتجاوز الحجم المسموح'},
    'problem_unusable': {'en': 'no usable ECG signal', 'fr': 'aucun signal ECG exploitable',
                         'ar': 'لا توجد إشارة تخطيط قلب صالحة'},
    'problem_other': {'en': 'this file cannot be used', 'fr': 'ce fichier est inutilisable',
                      'ar': 'لا يمكن استخدام هذا الملف'},
    'n_read': {'en': '{ok} record(s) read, {bad} problem(s)',
               'fr': '{ok} enregistrement(s) lu(s), {bad} problème(s)',
               'ar': 'قُرئ {ok} تسجيل، {bad} مشكلة'},
    'more_problems': {'en': '... and {n} more problem(s) in this upload',
                      'fr': '... et {n} autre(s) problème(s) dans ce dépôt',
                      'ar': '... و{n} مشكلة أخرى في هذا التحميل'},
    'results_table': {'en': 'Results', 'fr': 'Résultats', 'ar': 'النتائج'},
    'col_record': {'en': 'record', 'fr': 'enregistrement', 'ar': 'التسجيل'},
    'col_diagnoses': {'en': 'diagnoses', 'fr': 'diagnostics', 'ar': 'التشخيصات'},
    'col_duration': {'en': 'duration (s)', 'fr': 'durée (s)', 'ar': 'المدة (ث)'},
    'col_fs': {'en': 'recorded at (Hz)', 'fr': 'enregistré à (Hz)', 'ar': 'تردد التسجيل (هرتز)'},
    'open_record': {'en': 'Open record', 'fr': "Ouvrir l'enregistrement", 'ar': 'افتح التسجيل'},
    'record_line': {
        'en': '{name} · age {age} · {sex} · {seconds:.1f} s · recorded at {fs:g} Hz',
        'fr': '{name} · âge {age} · {sex} · {seconds:.1f} s · enregistré à {fs:g} Hz',
        'ar': '{name} · العمر {age} · {sex} · {seconds:.1f} ث · سُجّل بتردد {fs:g} هرتز'},
    'sex_Male': {'en': 'male', 'fr': 'homme', 'ar': 'ذكر'},
    'sex_Female': {'en': 'female', 'fr': 'femme', 'ar': 'أنثى'},
    'sex_Unknown': {'en': 'sex unknown', 'fr': 'sexe inconnu', 'ar': 'الجنس غير معروف'},
    'age_unknown': {'en': '?', 'fr': '?', 'ar': '؟'},
    'diagnosis': {'en': 'Diagnosis', 'fr': 'Diagnostic', 'ar': 'التشخيص'},
    'col_class': {'en': 'class', 'fr': 'classe', 'ar': 'الفئة'},
    'col_probability': {'en': 'probability', 'fr': 'probabilité', 'ar': 'الاحتمال'},
    'col_threshold': {'en': 'threshold', 'fr': 'seuil', 'ar': 'العتبة'},
    'col_decision': {'en': 'decision', 'fr': 'décision', 'ar': 'القرار'},
    'present': {'en': 'present', 'fr': 'présent', 'ar': 'موجود'},
    'absent': {'en': 'absent', 'fr': 'absent', 'ar': 'غير موجود'},
    'none_above': {'en': 'no class above its threshold',
                   'fr': 'aucune classe au-dessus de son seuil',
                   'ar': 'لا توجد فئة فوق عتبتها'},
    'bar_title': {'en': 'Probability per class; the mark is the threshold',
                  'fr': 'Probabilité par classe ; le trait est le seuil',
                  'ar': 'الاحتمال لكل فئة؛ العلامة هي العتبة'},
    'measurements': {'en': 'Measurements', 'fr': 'Mesures', 'ar': 'القياسات'},
    'cart_reading': {'en': "The cart's reading", 'fr': "La lecture de l'appareil",
                     'ar': 'قراءة الجهاز'},
    'cart_note': {
        'en': "Measurements and statements the recording device (or its software) wrote into "
              "the file: the manufacturer's algorithm, shown beside this model's result, not "
              "part of it.",
        'fr': "Mesures et conclusions que l'appareil (ou son logiciel) a écrites dans le "
              "fichier : l'algorithme du fabricant, montré à côté du résultat de ce modèle, "
              "pas le sien.",
        'ar': 'القياسات والعبارات التي كتبها جهاز التسجيل (أو برنامجه) في الملف: خوارزمية '
              'الشركة المصنعة، معروضة بجانب نتيجة هذا النموذج وليست جزءًا منها.'},
    'cart_statements': {'en': 'Statements', 'fr': 'Conclusions', 'ar': 'العبارات'},
    'cart_measures': {'en': "Cart's measurements", 'fr': "Mesures de l'appareil",
                      'ar': 'قياسات الجهاز'},
    'dev_hr': {'en': 'Heart rate (bpm)', 'fr': 'Fréquence (/min)',
               'ar': 'معدل القلب (نبضة/دقيقة)'},
    'dev_pr_ms': {'en': 'PR (ms)', 'fr': 'PR (ms)', 'ar': 'PR (مللي ثانية)'},
    'dev_qrs_ms': {'en': 'QRS (ms)', 'fr': 'QRS (ms)', 'ar': 'QRS (مللي ثانية)'},
    'dev_qt_ms': {'en': 'QT (ms)', 'fr': 'QT (ms)', 'ar': 'QT (مللي ثانية)'},
    'dev_qtc_ms': {'en': 'QTc (ms)', 'fr': 'QTc (ms)', 'ar': 'QTc (مللي ثانية)'},
    'dev_p_axis': {'en': 'P axis (°)', 'fr': 'Axe P (°)', 'ar': 'محور P (°)'},
    'dev_qrs_axis': {'en': 'QRS axis (°)', 'fr': 'Axe QRS (°)', 'ar': 'محور QRS (°)'},
    'dev_t_axis': {'en': 'T axis (°)', 'fr': 'Axe T (°)', 'ar': 'محور T (°)'},
    'lead_map_label': {
        'en': 'Lead map for generically named channels (optional), e.g. ECG=II',
        'fr': 'Correspondance des voies nommées de façon générique (facultatif), ex. ECG=II',
        'ar': 'تسمية القنوات ذات الأسماء العامة (اختياري)، مثل ECG=II'},
    'heart_rate': {'en': 'Heart rate (bpm)', 'fr': 'Fréquence cardiaque (/min)',
                  'ar': 'معدل ضربات القلب (نبضة/دقيقة)'},
    'rr_mean': {'en': 'RR mean (ms)', 'fr': 'RR moyen (ms)',
               'ar': 'متوسط RR (مللي ثانية)'},
    'rr_sd': {'en': 'RR SD (ms)', 'fr': 'RR écart-type (ms)',
             'ar': 'الانحراف المعياري لـ RR (مللي ثانية)'},
    'rr_range': {'en': 'RR min–max (ms)', 'fr': 'RR min–max (ms)',
                'ar': 'RR الأدنى–الأقصى (مللي ثانية)'},
    'beats': {'en': 'Beats detected', 'fr': 'Battements détectés', 'ar': 'النبضات المكتشفة'},
    'not_measurable': {
        'en': 'Heart rate not measurable: the QRS detector found fewer than 2 beats.',
        'fr': 'Fréquence non mesurable : le détecteur de QRS a trouvé moins de 2 battements.',
        'ar': 'تعذّر قياس المعدل: وجد كاشف QRS أقل من نبضتين.'},
    'measure_note': {
        'en': 'Heart rate and RR from the project\'s QRS detector on all leads; PR, QRS, QT, '
              'QTc and axes from the median beat of all leads (measure.py). A figure the '
              'record cannot support stays empty. Check them on the printout.',
        'fr': 'Fréquence et RR par le détecteur de QRS du projet sur toutes les dérivations ; '
              'PR, QRS, QT, QTc et axes sur le battement médian de toutes les dérivations '
              '(measure.py). Une mesure que le tracé ne permet pas reste vide. Vérifiez-les '
              'sur le tracé.',
        'ar': 'معدل القلب وRR من كاشف QRS في المشروع على كل الاتجاهات؛ PR وQRS وQT وQTc '
              'والمحاور من النبضة الوسيطة لكل الاتجاهات (measure.py). القياس الذي لا يسمح '
              'به التسجيل يبقى فارغاً. تحقّق منها على الرسم.'},
    'col_measure': {'en': 'measurement', 'fr': 'mesure', 'ar': 'القياس'},
    'col_ours': {'en': 'this app', 'fr': 'cette application', 'ar': 'هذا التطبيق'},
    'col_cart': {'en': "cart's reading", 'fr': "lecture de l'appareil", 'ar': 'قراءة الجهاز'},
    'meas_pr': {'en': 'PR (ms)', 'fr': 'PR (ms)', 'ar': 'PR (مللي ثانية)'},
    'meas_qrs': {'en': 'QRS (ms)', 'fr': 'QRS (ms)', 'ar': 'QRS (مللي ثانية)'},
    'meas_qt': {'en': 'QT (ms)', 'fr': 'QT (ms)', 'ar': 'QT (مللي ثانية)'},
    'meas_qtc_bazett': {'en': 'QTc Bazett (ms)', 'fr': 'QTc Bazett (ms)',
                        'ar': 'QTc بازيت (مللي ثانية)'},
    'meas_qtc_fridericia': {'en': 'QTc Fridericia (ms)', 'fr': 'QTc Fridericia (ms)',
                            'ar': 'QTc فريدريشيا (مللي ثانية)'},
    'meas_axes': {'en': 'Axes P / QRS / T (°)', 'fr': 'Axes P / QRS / T (°)',
                  'ar': 'المحاور P / QRS / T (°)'},
    'meas_empty': {'en': 'not measured', 'fr': 'non mesuré', 'ar': 'غير مُقاس'},
    # measure.py's reasons for an empty figure (measure_reason maps them here)
    'why_no_lead': {'en': 'no usable lead (flat or missing samples)',
                    'fr': 'aucune dérivation utilisable (plate ou échantillons manquants)',
                    'ar': 'لا يوجد اتجاه صالح للاستخدام (مسطّح أو عينات ناقصة)'},
    'why_short': {'en': 'record under 2 s', 'fr': 'enregistrement de moins de 2 s',
                  'ar': 'تسجيل أقصر من 2 ث'},
    'why_detector': {'en': 'the QRS detector failed', 'fr': 'le détecteur de QRS a échoué',
                     'ar': 'فشل كاشف QRS'},
    'why_few_beats': {'en': 'too few beats ({n} found, {need} needed)',
                      'fr': 'trop peu de battements ({n} trouvés, {need} nécessaires)',
                      'ar': 'عدد النبضات قليل جدًا ({n} وُجدت، {need} مطلوبة)'},
    'why_few_shape': {'en': 'too few beats of one shape ({n}, {need} needed)',
                      'fr': 'trop peu de battements de même forme ({n}, {need} nécessaires)',
                      'ar': 'عدد النبضات ذات الشكل الواحد قليل جدًا ({n}، {need} مطلوبة)'},
    'why_paced': {'en': 'paced rhythm (pacing spikes before the QRS)',
                  'fr': 'rythme électro-entraîné (spicules de stimulation avant le QRS)',
                  'ar': 'نظم مُنظَّم بجهاز (نبضات التنظيم قبل QRS)'},
    'why_qrs_edges': {'en': 'QRS onset/offset not found (noise as steep as the QRS)',
                      'fr': 'début/fin du QRS introuvables (bruit aussi raide que le QRS)',
                      'ar': 'لم تُحدَّد بداية/نهاية QRS (ضجيج بحدة QRS)'},
    'why_qt_leads': {'en': 'QT needs two or more leads',
                     'fr': 'le QT demande au moins deux dérivations',
                     'ar': 'يحتاج QT إلى اتجاهين أو أكثر'},
    'why_t_end': {'en': 'no T wave end found', 'fr': 'fin de l’onde T introuvable',
                  'ar': 'لم تُحدَّد نهاية الموجة T'},
    'why_p_in_t': {'en': 'the P wave runs into the previous T wave',
                   'fr': 'l’onde P se confond avec l’onde T précédente',
                   'ar': 'الموجة P تتداخل مع الموجة T السابقة'},
    'why_no_p': {'en': 'no P wave that repeats from beat to beat (atrial fibrillation or '
                       'flutter, or noise)',
                 'fr': 'pas d’onde P qui se répète d’un battement à l’autre (fibrillation ou '
                       'flutter atrial, ou bruit)',
                 'ar': 'لا توجد موجة P تتكرر من نبضة لأخرى (رجفان أو رفرفة أذينية، أو ضجيج)'},
    'why_axis_leads': {'en': 'an axis needs two limb leads',
                       'fr': 'un axe demande deux dérivations des membres',
                       'ar': 'يحتاج المحور إلى اتجاهين طرفيين'},
    'why_axis_independent': {'en': 'an axis needs two independent limb leads',
                             'fr': 'un axe demande deux dérivations des membres indépendantes',
                             'ar': 'يحتاج المحور إلى اتجاهين طرفيين مستقلين'},
    'crit_iavb': {
        'en': 'PR {pr} ms > 200 ms: first-degree AV block criterion',
        'fr': 'PR {pr} ms > 200 ms : critère de bloc auriculo-ventriculaire du premier degré',
        'ar': 'PR {pr} مللي ثانية > 200 مللي ثانية: '
              'معيار الإحصار الأذيني البطيني من الدرجة الأولى'},
    'crit_bbb': {
        'en': 'QRS {qrs} ms ≥ 120 ms: bundle branch block criterion (left or right: see the '
              'QRS shape in V1 and V6)',
        'fr': 'QRS {qrs} ms ≥ 120 ms : critère de bloc de branche (gauche ou droit : voir la '
              'forme du QRS en V1 et V6)',
        'ar': 'QRS {qrs} مللي ثانية ≥ 120 مللي ثانية: معيار إحصار الحزمة (أيسر أو أيمن: انظر '
              'شكل QRS في V1 وV6)'},
    'crit_note': {
        'en': 'Interval criteria from the measurements, beside the model\'s decision above '
              '(not instead of it):',
        'fr': 'Critères d\'intervalles tirés des mesures, à côté de la décision du modèle '
              'ci-dessus (pas à sa place) :',
        'ar': 'معايير الفترات من القياسات، بجانب قرار النموذج أعلاه (لا بدلاً منه):'},
    'printout': {'en': 'Printout (25 mm/s, 10 mm/mV)', 'fr': 'Tracé (25 mm/s, 10 mm/mV)',
                 'ar': 'الرسم المطبوع (25 مم/ث، 10 مم/مللي فولت)'},
    'printout_settings': {
        'en': '25 mm/s   10 mm/mV   recorded at {fs:g} Hz, shown at 500 Hz   first {shown:.1f} s '
              'of {total:.1f} s   rhythm strip: {lead}',
        'fr': '25 mm/s   10 mm/mV   enregistré à {fs:g} Hz, affiché à 500 Hz   {shown:.1f} '
              'premières s sur {total:.1f} s   bande de rythme : {lead}',
        'ar': '25 مم/ث   10 مم/مللي فولت   سُجّل بتردد {fs:g} هرتز ويُعرض بتردد 500 هرتز   أول '
              '{shown:.1f} ث من {total:.1f} ث   شريط النظم: {lead}'},
    'grid_note': {'en': 'grid: 1 mm = 0.04 s x 0.1 mV; 5 mm = 0.2 s x 0.5 mV',
                  'fr': 'grille : 1 mm = 0,04 s x 0,1 mV ; 5 mm = 0,2 s x 0,5 mV',
                  'ar': 'الشبكة: 1 مم = 0.04 ث × 0.1 مللي فولت؛ 5 مم = 0.2 ث × 0.5 مللي فولت'},
    'no_printout': {
        'en': 'No 12-lead printout: the record gives the leads {leads} only.',
        'fr': 'Pas de tracé 12 dérivations : l\'enregistrement ne donne que {leads}.',
        'ar': 'لا يوجد رسم بـ12 اتجاهاً: التسجيل لا يعطي إلا {leads}.'},
    'shown_part': {
        'en': 'The first 10 s of the {shown:.1f} s the model reads (the end of the '
              '{total:.1f}-s record).',
        'fr': 'Les 10 premières secondes des {shown:.1f} s que lit le modèle (la fin de '
              "l'enregistrement de {total:.1f} s).",
        'ar': 'أول 10 ثوانٍ من {shown:.1f} ث التي يقرؤها النموذج (نهاية التسجيل البالغ '
              '{total:.1f} ث).'},
    'quality': {'en': 'Signal quality: {flags}', 'fr': 'Qualité du signal : {flags}',
                'ar': 'جودة الإشارة: {flags}'},
    'interactive': {'en': 'Interactive view', 'fr': 'Vue interactive', 'ar': 'عرض تفاعلي'},
    'leads_shown': {'en': 'Leads', 'fr': 'Dérivations', 'ar': 'الاتجاهات'},
    'overlay': {'en': 'Overlay the leads', 'fr': 'Superposer les dérivations',
                'ar': 'تراكب الاتجاهات'},
    'time_s': {'en': 'time (s)', 'fr': 'temps (s)', 'ar': 'الزمن (ث)'},
    'explanation': {'en': 'Explanation', 'fr': 'Explication', 'ar': 'التفسير'},
    'explain': {'en': 'Explain', 'fr': 'Expliquer', 'ar': 'فسِّر'},
    'explain_help': {
        'en': 'SHAP (expected gradients) for the predicted classes: which parts of which '
              'leads drove each diagnosis.',
        'fr': 'SHAP (gradients espérés) pour les classes prédites : quelles parties de quelles '
              'dérivations ont motivé chaque diagnostic.',
        'ar': 'قيم SHAP (التدرجات المتوقعة) للفئات المتنبأ بها: أي أجزاء من أي اتجاهات قادت '
              'كل تشخيص.'},
    'explaining': {'en': 'Explaining {cls}: sample {done} of {total}',
                   'fr': 'Explication de {cls} : échantillon {done} sur {total}',
                   'ar': 'تفسير {cls}: العينة {done} من {total}'},
    'explained_in': {'en': 'Explained in {seconds:.1f} s.', 'fr': 'Expliqué en {seconds:.1f} s.',
                     'ar': 'فُسِّر في {seconds:.1f} ث.'},
    'shap_settings': {
        'en': 'Setting: expected gradients on the logits, {nsamples} samples per class in one '
              'batched pass over the predicted classes, background: {background}. '
              'Additivity (sum of SHAP vs f(x) − E[f]): {additivity}.',
        'fr': 'Réglage : gradients espérés sur les logits, {nsamples} échantillons par classe '
              'en une passe groupée sur les classes prédites, référence : {background}. '
              'Additivité (somme des SHAP vs f(x) − E[f]) : {additivity}.',
        'ar': 'الإعداد: التدرجات المتوقعة على اللوجيت، {nsamples} عينة لكل فئة في تمريرة '
              'واحدة مجمّعة للفئات المتنبأ بها، الخلفية: {background}. الجمعية (مجموع SHAP '
              'مقابل f(x) − E[f]): {additivity}.'},
    'background_train': {'en': '{n} training records of {db} (seeded)',
                         'fr': "{n} enregistrements d'entraînement de {db} (tirage fixé)",
                         'ar': '{n} تسجيلاً تدريبياً من {db} (بذرة ثابتة)'},
    'background_flat': {
        'en': 'a flat line (the training data {db} is not on this machine)',
        'fr': "une ligne plate (les données d'entraînement {db} ne sont pas sur cette machine)",
        'ar': 'خط مستوٍ (بيانات التدريب {db} غير موجودة على هذا الجهاز)'},
    'nsamples_label': {'en': 'SHAP samples per class', 'fr': 'Échantillons SHAP par classe',
                       'ar': 'عينات SHAP لكل فئة'},
    'highlight': {'en': 'Highlight the segments that drove', 'fr': 'Surligner ce qui a motivé',
                  'ar': 'إبراز المقاطع التي قادت إلى'},
    'highlight_none': {'en': 'nothing', 'fr': 'rien', 'ar': 'لا شيء'},
    'highlight_note': {
        'en': 'Shaded: the segments of highest positive SHAP for {cls} (smoothed over 40 ms, '
              'above the 95th percentile over all leads).',
        'fr': 'En couleur : les segments de SHAP positif le plus élevé pour {cls} (lissé sur '
              '40 ms, au-dessus du 95e percentile sur toutes les dérivations).',
        'ar': 'المظلَّل: مقاطع أعلى قيم SHAP الموجبة لـ {cls} (مُنعَّمة على 40 مللي ثانية، فوق '
              'المئين 95 على كل الاتجاهات).'},
    'lead_importance': {'en': 'Lead importance for {cls} (share of positive SHAP)',
                        'fr': 'Importance des dérivations pour {cls} (part du SHAP positif)',
                        'ar': 'أهمية الاتجاهات لـ {cls} (حصة SHAP الموجبة)'},
    'for_public': {'en': 'In brief', 'fr': 'En bref', 'ar': 'باختصار'},
    'for_clinicians': {'en': 'For clinicians', 'fr': 'Pour les cliniciens', 'ar': 'للأطباء'},
    'downloads': {'en': 'Downloads', 'fr': 'Téléchargements', 'ar': 'التنزيلات'},
    'download_pdf': {'en': 'Download report (PDF)', 'fr': 'Télécharger le rapport (PDF)',
                     'ar': 'تنزيل التقرير (PDF)'},
    'download_csv': {'en': 'Scores (CSV)', 'fr': 'Scores (CSV)', 'ar': 'الدرجات (CSV)'},
    'download_json': {'en': 'Scores (JSON)', 'fr': 'Scores (JSON)', 'ar': 'الدرجات (JSON)'},
    'report_title': {'en': 'ECG report: {name}', 'fr': 'Rapport ECG : {name}',
                     'ar': 'تقرير تخطيط القلب: {name}'},
    'report_model': {'en': 'Model: {arch}, {leads}, {database}; thresholds: {thresholds}',
                     'fr': 'Modèle : {arch}, {leads}, {database} ; seuils : {thresholds}',
                     'ar': 'النموذج: {arch}، {leads}، {database}؛ العتبات: {thresholds}'},
    'report_generated': {'en': 'Generated {when} by ecg-diagnosis {commit}',
                         'fr': 'Généré le {when} par ecg-diagnosis {commit}',
                         'ar': 'أُنشئ في {when} بواسطة ecg-diagnosis {commit}'},

    # Class names.
    'class_SNR': {'en': 'sinus rhythm', 'fr': 'rythme sinusal', 'ar': 'نظم جيبي'},
    'class_AF': {'en': 'atrial fibrillation', 'fr': 'fibrillation atriale', 'ar': 'رجفان أذيني'},
    'class_IAVB': {'en': 'first-degree AV block',
                   'fr': 'bloc auriculo-ventriculaire du premier degré',
                   'ar': 'إحصار أذيني بطيني من الدرجة الأولى'},
    'class_LBBB': {'en': 'left bundle branch block', 'fr': 'bloc de branche gauche',
                   'ar': 'إحصار الحزيمة اليسرى'},
    'class_RBBB': {'en': 'right bundle branch block', 'fr': 'bloc de branche droit',
                   'ar': 'إحصار الحزيمة اليمنى'},
    'class_PAC': {'en': 'premature atrial contraction', 'fr': 'extrasystole auriculaire',
                  'ar': 'انقباض أذيني مبكر'},
    'class_PVC': {'en': 'premature ventricular contraction', 'fr': 'extrasystole ventriculaire',
                  'ar': 'انقباض بطيني مبكر'},
    'class_STD': {'en': 'ST-segment depression', 'fr': 'sous-décalage du segment ST',
                  'ar': 'انخفاض المقطع ST'},
    'class_STE': {'en': 'ST-segment elevation', 'fr': 'sus-décalage du segment ST',
                  'ar': 'ارتفاع المقطع ST'},

    # Brief texts for the public.
    'public_SNR': {'en': 'The heartbeat starts normally, in the heart\'s natural pacemaker.',
                   'fr': 'Le battement naît normalement, dans le stimulateur naturel du cœur.',
                   'ar': 'تبدأ ضربات القلب بشكل طبيعي من الناظمة الطبيعية للقلب.'},
    'public_AF': {'en': 'The upper chambers quiver instead of beating, so the pulse is irregular.',
                  'fr': 'Les oreillettes frémissent au lieu de battre : le pouls est irrégulier.',
                  'ar': 'ترتجف الحجرات العلوية بدل أن تنقبض، فيصبح النبض غير منتظم.'},
    'public_IAVB': {'en': 'The signal from the upper to the lower chambers is slightly delayed.',
                    'fr': 'Le signal des oreillettes vers les ventricules est un peu retardé.',
                    'ar': 'تتأخر الإشارة قليلاً من الحجرات العلوية إلى السفلية.'},
    'public_LBBB': {'en': 'The left wiring of the lower chambers conducts slowly.',
                    'fr': 'Le câblage gauche des ventricules conduit lentement.',
                    'ar': 'التوصيل في الفرع الأيسر للبطينين بطيء.'},
    'public_RBBB': {'en': 'The right wiring of the lower chambers conducts slowly.',
                    'fr': 'Le câblage droit des ventricules conduit lentement.',
                    'ar': 'التوصيل في الفرع الأيمن للبطينين بطيء.'},
    'public_PAC': {'en': 'Some beats start early in the upper chambers.',
                   'fr': 'Certains battements partent trop tôt des oreillettes.',
                   'ar': 'بعض النبضات تبدأ مبكراً من الحجرات العلوية.'},
    'public_PVC': {'en': 'Some beats start early in the lower chambers.',
                   'fr': 'Certains battements partent trop tôt des ventricules.',
                   'ar': 'بعض النبضات تبدأ مبكراً من الحجرات السفلية.'},
    'public_STD': {'en': 'Part of the trace after each beat sits low; it can mean the heart '
                         'muscle lacks oxygen.',
                   'fr': "Une partie du tracé après chaque battement est trop basse ; cela peut "
                         "signifier un manque d'oxygène du muscle cardiaque.",
                   'ar': 'جزء من الخط بعد كل نبضة منخفض؛ وقد يعني نقص الأكسجين في عضلة القلب.'},
    'public_STE': {'en': 'Part of the trace after each beat sits high; it can mean heart-muscle '
                         'injury and needs urgent review.',
                   'fr': 'Une partie du tracé après chaque battement est trop haute ; cela peut '
                         'signifier une atteinte du muscle cardiaque et demande un avis urgent.',
                   'ar': 'جزء من الخط بعد كل نبضة مرتفع؛ وقد يعني إصابة عضلة القلب ويستدعي '
                         'مراجعة عاجلة.'},

    # What a cardiologist checks.
    'clinical_SNR': {
        'en': 'A P wave before every QRS, upright in I and II; constant PR 120–200 ms; '
              'rate 60–100 bpm with regular RR.',
        'fr': 'Une onde P avant chaque QRS, positive en DI et DII ; PR constant 120–200 ms ; '
              'fréquence 60–100/min, RR réguliers.',
        'ar': 'موجة P قبل كل QRS، موجبة في I وII؛ فترة PR ثابتة 120–200 مللي ثانية؛ المعدل '
              '60–100 نبضة/دقيقة مع RR منتظم.'},
    'clinical_AF': {
        'en': 'No P waves; irregularly irregular RR intervals; fibrillatory f waves, best '
              'seen in V1 and II.',
        'fr': "Pas d'onde P ; RR irrégulièrement irréguliers ; ondes f de fibrillation, "
              'mieux vues en V1 et DII.',
        'ar': 'غياب موجات P؛ فترات RR غير منتظمة عشوائياً؛ موجات f الرجفانية، أوضح في V1 وII.'},
    'clinical_IAVB': {
        'en': 'PR interval > 200 ms, constant from beat to beat, every P wave conducted.',
        'fr': 'PR > 200 ms, constant d\'un battement à l\'autre, chaque onde P conduite.',
        'ar': 'فترة PR أطول من 200 مللي ثانية، ثابتة من نبضة لأخرى، وكل موجة P موصَّلة.'},
    'clinical_LBBB': {
        'en': 'QRS ≥ 120 ms; broad notched R in I, aVL, V5–V6 without septal q; QS or rS '
              'in V1; ST-T discordant to the QRS.',
        'fr': 'QRS ≥ 120 ms ; R large crocheté en DI, aVL, V5–V6 sans q septale ; QS ou rS en '
              'V1 ; ST-T discordant.',
        'ar': 'QRS ≥ 120 مللي ثانية؛ موجة R عريضة مثلومة في I وaVL وV5–V6 دون q حاجزية؛ QS أو '
              'rS في V1؛ ST-T معاكس لاتجاه QRS.'},
    'clinical_RBBB': {
        'en': "QRS ≥ 120 ms; rsR' in V1–V2; wide slurred S wave in I and V6.",
        'fr': "QRS ≥ 120 ms ; rsR' en V1–V2 ; onde S large et empâtée en DI et V6.",
        'ar': "QRS ≥ 120 مللي ثانية؛ نمط rsR' في V1–V2؛ موجة S عريضة مدغمة في I وV6."},
    'clinical_PAC': {
        'en': 'A premature beat with an abnormal P wave and a narrow QRS, usually followed '
              'by a non-compensatory pause.',
        'fr': 'Battement prématuré avec onde P anormale et QRS fin, suivi le plus souvent '
              "d'un repos non compensateur.",
        'ar': 'نبضة مبكرة بموجة P غير طبيعية وQRS ضيق، تليها عادةً فترة توقف غير تعويضية.'},
    'clinical_PVC': {
        'en': 'A premature wide QRS (≥ 120 ms) with no preceding P wave, a discordant T wave '
              'and usually a compensatory pause.',
        'fr': "QRS prématuré large (≥ 120 ms) sans onde P qui le précède, onde T discordante, "
              'repos compensateur le plus souvent.',
        'ar': 'QRS مبكر عريض (≥ 120 مللي ثانية) دون موجة P قبله، مع موجة T معاكسة وعادةً فترة '
              'توقف تعويضية.'},
    'clinical_STD': {
        'en': 'Horizontal or downsloping ST depression ≥ 0.05 mV (0.5 mm) at the J point in '
              'two contiguous leads.',
        'fr': 'Sous-décalage ST horizontal ou descendant ≥ 0,05 mV (0,5 mm) au point J dans '
              'deux dérivations contiguës.',
        'ar': 'انخفاض أفقي أو هابط للمقطع ST بمقدار ≥ 0.05 مللي فولت (0.5 مم) عند النقطة J في '
              'اتجاهين متجاورين.'},
    'clinical_STE': {
        'en': 'ST elevation at the J point ≥ 0.1 mV (1 mm) in two contiguous leads (higher '
              'cut-offs in V2–V3).',
        'fr': 'Sus-décalage ST au point J ≥ 0,1 mV (1 mm) dans deux dérivations contiguës '
              '(seuils plus hauts en V2–V3).',
        'ar': 'ارتفاع المقطع ST عند النقطة J بمقدار ≥ 0.1 مللي فولت (1 مم) في اتجاهين '
              'متجاورين (عتبات أعلى في V2–V3).'},
}


def t(lang, key, **kw):
    """TEXT[key][lang] with {placeholders} filled; English when a language lacks it
    (the test makes sure none does)."""
    entry = TEXT[key]
    text = entry.get(lang, entry['en'])
    return text.format(**kw) if kw else text


# The first pattern found in a problem's reason gives its kind (problem_<kind>).
PROBLEM_KINDS = (('too_large', 'size limit'), ('nan', 'nan/missing'), ('missing', 'missing'),
                 ('missing', 'no such file'),
                 ('missing', 'no .hea header'), ('truncated', 'truncated'),
                 ('empty', 'zero-length'), ('empty', 'is empty'),
                 ('leads', 'lacks lead'), ('leads', 'no ecg lead'),
                 ('unusable', 'usable signal'), ('unusable', 'flat'),
                 ('corrupt', 'corrupt'), ('corrupt', 'unreadable'), ('corrupt', 'malformed'),
                 ('corrupt', 'cannot read'), ('corrupt', 'not a readable'))


# measure.py's reasons (English, as measure.py words them) -> a text key; the
# numbers in brackets are kept. A reason not listed is shown as it is (the
# test makes sure each reason measure.py writes is listed).
MEASURE_REASONS = (
    (r'no usable lead', 'why_no_lead'), (r'record under 2 s', 'why_short'),
    (r'QRS detector', 'why_detector'),
    (r'too few beats of one shape \((?P<n>\d+), (?P<need>\d+) needed\)', 'why_few_shape'),
    (r'too few beats \((?P<n>\d+) found, (?P<need>\d+) needed\)', 'why_few_beats'),
    (r'paced rhythm', 'why_paced'), (r'QRS onset/offset not found', 'why_qrs_edges'),
    (r'QT needs two or more leads', 'why_qt_leads'), (r'no T wave end found', 'why_t_end'),
    (r'the P wave runs into the previous T wave', 'why_p_in_t'),
    (r'no P wave that repeats', 'why_no_p'),
    (r'an axis needs two independent limb leads', 'why_axis_independent'),
    (r'an axis needs two limb leads', 'why_axis_leads'))


def measure_reason(lang, reason):
    """measure.py's reason for an empty figure, in `lang`."""
    for pattern, key in MEASURE_REASONS:
        m = re.match(pattern, str(reason))
        if m:
            return t(lang, key, **m.groupdict())
    return reason


def problem_text(lang, file, reason):
    """One line for a bad upload: the file, the kind of problem in `lang`, and
    the technical reason (English, as records/ words it) in brackets."""
    low = str(reason).lower()
    kind = next((k for k, pattern in PROBLEM_KINDS if pattern in low), 'other')
    return t(lang, 'bad_file', file=file, kind=t(lang, f'problem_{kind}'), reason=reason)


def placeholders(text):
    """The {names} a string expects."""
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}

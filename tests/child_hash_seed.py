"""Fold assignment and class mapping, printed, for
tests/test_determinism.py, which runs this under two PYTHONHASHSEED values
and expects the same line (a set iterated in hash order would differ):

    PYTHONHASHSEED=1 PYTHONPATH=. python tests/child_hash_seed.py
"""
import numpy as np
import pandas as pd

import folds
import utils

y = (np.random.default_rng(0).random((300, 9)) < 0.2).astype(int)
groups = [f'g{i // 3}' for i in range(300)]
f = folds.assign_group_folds(y, groups, seed=42)
labels = pd.DataFrame({'patient_id': [f'R{i}' for i in range(300)], 'fold': f})
codes = [['426783006', '59118001', '164889003', '17338001'][::k or 1] for k in range(-2, 3)]
print(folds.fold_manifest(labels)['hash'], [utils.dx_to_classes(c) for c in codes])

"""The study's loader, the baseline of the loader and training sections:
wfdb.rdsamp on every access, the study's augmentation, the last `window`
samples zero-padded in front."""
import numpy as np
import torch
import wfdb
from torch.utils.data import Dataset

from records import WINDOW
from utils import CLASSES


class StudyDataset(Dataset):
    def __init__(self, data_dir, labels, window=WINDOW, augment=False):
        self.data_dir, self.labels = data_dir, labels
        self.window, self.augment = window, augment

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        row = self.labels.iloc[i]
        sig, _ = wfdb.rdsamp(str(self.data_dir / row['patient_id']))
        if self.augment:
            if np.random.randn() > 0.5:
                sig = sig * np.random.normal(1.0, 0.1, (1, sig.shape[1]))
            if np.random.randn() > 0.5:
                sig = sig + np.random.choice(range(-20, 20), sig.shape[1]) / 1000
        sig = sig[-self.window:]
        result = np.zeros((self.window, 12))
        result[-len(sig):, :] = sig
        y = row[CLASSES].to_numpy(dtype=np.float32)
        return torch.from_numpy(result.T).float(), torch.from_numpy(y)

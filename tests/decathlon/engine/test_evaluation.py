"""evaluate(): predictions deduplicated by image id, statistics without the padding repeats."""
import numpy as np
import pytest
import torch

from decathlon.engine import distributed, evaluate


class _PaddedLoader:
    """One DDP rank's evaluation part: images 5, 6, 7, then the padding repeat of image 1
    (a loader pads at the end of the last ranks' parts), in batches of 3. Each image's
    pixels are its id, its label is its id mod 2."""
    real_images_per_rank = 3

    def __iter__(self):
        for ids in ([5, 6, 7], [1]):
            ids = torch.tensor(ids)
            yield ids.float().view(-1, 1).expand(-1, 4), ids % 2, ids.numpy()


class _MeanPixel(torch.nn.Module):
    """Predicts class (id mod 2) and reports the mean pixel (= mean id) of what it saw."""

    def __init__(self):
        super().__init__()
        self.seen = None

    def autocast(self):
        return torch.autocast("cpu", enabled=False)

    def use_eval_policy(self, policy):
        pass

    def predict(self, images):
        self.seen = images
        odd = images[:, 0] % 2
        return torch.stack([1 - odd, odd], 1)

    def eval_stats(self, count: int) -> dict:
        return {"mean_id": float(self.seen[:count, 0].mean()), "per_column": self.seen[:count].mean(0).tolist()}


def test_padding_repeats_count_in_neither_accuracy_nor_statistics():
    result = evaluate(_MeanPixel(), _PaddedLoader(), distributed.local("cpu"))
    assert result.count == 4 and result.accuracy == 1.0   # the repeat is image 1, seen once here
    assert result.stats["mean_id"] == pytest.approx(6.0)   # (5 + 6 + 7) / 3, not (5 + 6 + 7 + 1) / 4
    assert np.allclose(result.stats["per_column"], 6.0)

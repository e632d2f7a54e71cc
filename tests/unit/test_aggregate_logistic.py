"""defenses.WorkerMedian: Yin et al. (2018)'s median of the workers' mean gradients."""
import pytest
import torch

from poisonlab import defenses


def test_worker_median_is_the_median_of_share_means():
    g = torch.randn(2, 12, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got = defenses.WorkerMedian(4)(g)
    means = g.reshape(2, 4, 3, 3).mean(2)                 # 4 consecutive shares of 3 examples
    assert torch.allclose(got, 0.5 * (means.sort(1).values[:, 1] + means.sort(1).values[:, 2]))
    odd = defenses.WorkerMedian(3)(g)
    assert torch.allclose(odd, g.reshape(2, 3, 4, 3).mean(2).median(1).values)


def test_its_limits_are_the_mean_and_the_per_example_median():
    g = torch.randn(1, 10, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.allclose(defenses.WorkerMedian(1)(g), g.mean(1))
    assert torch.allclose(defenses.WorkerMedian(10)(g), defenses.Median()(g))
    assert torch.allclose(defenses.WorkerMedian(50)(g), defenses.Median()(g))   # fewer examples than workers


def test_unequal_shares_and_robustness():
    g = torch.ones(1, 7, 1, dtype=torch.float64)
    g[0, 0] = 1e6                                        # one corrupted example: one worker's mean is off
    assert float(defenses.WorkerMedian(3)(g)) == pytest.approx(1.0)
    assert float(defenses.Mean()(g)) > 1e5


def test_on_clean_skewed_gradients_it_is_less_biased_than_the_per_example_median():
    # exponential per-example gradients: mean 1, per-example median log 2
    gen = torch.Generator().manual_seed(2)
    g = torch.empty(200, 64, 1, dtype=torch.float64).exponential_(generator=gen)
    bias_med = float(defenses.Median()(g).mean() - 1)
    bias_workers = float(defenses.WorkerMedian(8)(g).mean() - 1)
    assert abs(bias_workers) < abs(bias_med) / 3


@pytest.mark.parametrize("workers", [0, -2, 1.5, "4"])
def test_bad_worker_counts_name_the_parameter(workers):
    with pytest.raises(ValueError, match="workers"):
        defenses.WorkerMedian(workers)

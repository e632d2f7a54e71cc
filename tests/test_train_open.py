"""The open batched trainer: today's results bit for bit, optimisers, objectives, aggregators, callbacks, device."""
import pytest
import torch

import train_baseline


@pytest.fixture(scope="module")
def recorded():
    return torch.load(train_baseline.PATH)


@pytest.fixture(scope="module")
def today():
    return train_baseline.runs()


@pytest.mark.parametrize("name", sorted(torch.load(train_baseline.PATH)))
def test_train_batched_bit_identical_to_the_closed_trainer(name, recorded, today):
    """Runs recorded with train.py before the train/ package (tests/train_baseline.py): equal bit for bit."""
    assert sorted(today[name]) == sorted(recorded[name])
    for key, value in recorded[name].items():
        assert torch.equal(today[name][key], value), (name, key)

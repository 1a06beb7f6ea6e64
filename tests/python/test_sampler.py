"""Sampler: greedy, seeded draws, the distribution, penalties, bad parameters."""

import math

import pytest

import rwkvc


def test_greedy_is_the_argmax():
    s = rwkvc.Sampler(temperature=0)
    assert s.sample([0.1, 3.0, 2.0, 3.0]) == 1  # lowest id on ties


def test_same_seed_same_draws():
    logits = [math.sin(i) for i in range(100)]
    a = [rwkvc.Sampler(seed=42, top_p=1.0).sample(logits) for _ in range(3)]
    s1, s2 = rwkvc.Sampler(seed=42, top_p=1.0), rwkvc.Sampler(seed=42, top_p=1.0)
    assert [s1.sample(logits) for _ in range(20)] == [s2.sample(logits) for _ in range(20)]
    assert len(set(a)) == 1
    s1.reseed(42)
    s2.reseed(42)
    assert s1.uniform() == s2.uniform() and 0 <= s1.uniform() < 1
    assert rwkvc.Sampler().seed != rwkvc.Sampler().seed  # a random seed when none is given


def test_distribution_and_top_k():
    probs = rwkvc.Sampler(top_k=2, top_p=1.0).distribution([1.0, 2.0, 3.0, 0.0])
    values = memoryview(probs).cast("B").cast("f").tolist()
    assert abs(sum(values) - 1) < 1e-6 and values[0] == 0 and values[3] == 0 and values[2] > values[1] > 0


def test_penalties_and_occurrences():
    s = rwkvc.Sampler(alpha_presence=0.5, alpha_frequency=0.25, alpha_decay=1.0)
    assert s.occurrence(3) is None
    s.accept(3, b"a")
    s.accept(3, "a")
    assert s.occurrence(3) == 2.0
    s.accept(4, b" ")  # whitespace: an entry, but no weight
    assert s.occurrence(4) == 0.0
    import array
    logits = array.array("f", [1.0] * 6)
    s.penalize(logits)
    assert logits.tolist() == [1.0, 1.0, 1.0, 1.0 - 0.5 - 2 * 0.25, 0.5, 1.0]
    s.reset()
    assert s.occurrence(3) is None


def test_bans_and_no_token():
    s = rwkvc.Sampler(temperature=0, ban=[1])
    assert s.sample([0.0, 5.0, 1.0]) == 2
    with pytest.raises(rwkvc.NumericError):
        rwkvc.Sampler(ban=[0, 1]).sample([1.0, 2.0])
    with pytest.raises(rwkvc.NumericError):
        rwkvc.Sampler().sample([float("nan"), 1.0])
    with pytest.raises(rwkvc.NumericError):
        rwkvc.Sampler().sample([])


@pytest.mark.parametrize("kwargs", [{"temperature": -1}, {"top_p": 1.5}, {"top_k": -2}, {"alpha_decay": 2},
                                    {"alpha_presence": float("inf")}, {"ban": [-1]}])
def test_bad_parameters_are_argument_errors(kwargs):
    with pytest.raises(rwkvc.ArgumentError) as info:
        rwkvc.Sampler(**kwargs)
    assert str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("kwargs,error", [({"temperature": "hot"}, TypeError), ({"seed": -1}, ValueError),
                                          ({"seed": 1.5}, TypeError), ({"top_k": 2**40}, OverflowError),
                                          ({"ban": ["x"]}, TypeError)])
def test_bad_types(kwargs, error):
    with pytest.raises(error):
        rwkvc.Sampler(**kwargs)

"""Model.eval_batch: each row equals Model.eval of that state alone, states advance, bad batches are refused;
Model.eval_batch_sample draws what Sampler.sample draws from those rows."""

import array

import pytest

import rwkvc

# The tolerance of the C tests (tests/batch_check.h): the batched step sums in another order than eval of one token.
ATOL = 2e-5
RTOL = 2e-5


def floats(a):
    """The values of a logits/state array as a flat list, whichever kind of array it is."""
    return memoryview(a).cast("B").cast("f").tolist()


def row(logits, i, n_vocab):
    """Row i of a (B, n_vocab) result (a memoryview has no sub-views of one row)."""
    return floats(logits)[i * n_vocab:(i + 1) * n_vocab]


def assert_close(got, want):
    got, want = list(got), floats(want)
    assert len(got) == len(want)
    worst = max(abs(g - w) / (ATOL + RTOL * abs(w)) for g, w in zip(got, want))
    assert worst <= 1, f"off by {worst:.3g} times the tolerance"


def streams(model, n):
    """n states with different histories (the first one fresh): stream i has fed 3 i + i % 2 tokens."""
    states = []
    for i in range(n):
        s = model.new_state()
        history = [(7 * i + 13 * t) % model.n_vocab for t in range(3 * i + i % 2)]
        if history:
            model.feed(history, s)
        states.append(s)
    return states


@pytest.mark.parametrize("kind", ["rwkv4", "gpt"])
def test_each_row_equals_eval_alone_and_states_advance(models, kind):
    m = rwkvc.Model(models[kind], threads=2)
    states = streams(m, 4)
    tokens = [65, 3, 255, 65]
    # The GPT's KV cache cannot be copied: a twin stream replays the same history instead.
    alone = [s.copy() for s in states] if kind == "rwkv4" else streams(m, 4)
    before = [s.pos for s in states]
    logits = m.eval_batch(tokens, states)
    assert tuple(memoryview(logits).shape) == (4, m.n_vocab)
    for i, (token, s, one) in enumerate(zip(tokens, states, alone)):
        assert_close(row(logits, i, m.n_vocab), m.eval(token, one))
        assert s.pos == before[i] + 1 == one.pos
        if kind == "rwkv4":
            assert_close(floats(s.data), one.data)


def test_a_row_does_not_depend_on_the_batch(models):
    m = rwkvc.Model(models["rwkv4"])
    states = streams(m, 3)
    solo = states[2].copy()
    logits = m.eval_batch([10, 20, 30], states)
    assert floats(m.eval_batch([30], [solo])) == row(logits, 2, m.n_vocab)
    assert floats(solo.data) == floats(states[2].data)


def test_out_buffer_is_filled(models):
    m = rwkvc.Model(models["rwkv4"])
    states = streams(m, 2)
    twins = [s.copy() for s in states]
    out = array.array("f", bytes(4 * 2 * m.n_vocab))
    assert m.eval_batch([1, 2], states, out=out) is out
    assert out.tolist() == floats(m.eval_batch([1, 2], twins))
    with pytest.raises(ValueError, match="expected"):
        m.eval_batch([1, 2], states, out=array.array("f", bytes(4 * m.n_vocab)))


def test_bad_batches_are_refused_and_feed_nothing(models):
    m = rwkvc.Model(models["rwkv4"])
    a, b = m.new_state(), m.new_state()
    closed = m.new_state()
    closed.close()
    other = rwkvc.Model(models["gpt"]).new_state()  # a model of another shape
    with pytest.raises(ValueError, match="one token per state"):
        m.eval_batch([1, 2, 3], [a, b])
    with pytest.raises(ValueError, match="no states"):
        m.eval_batch([], [])
    with pytest.raises(TypeError):
        m.eval_batch(1, [a])
    with pytest.raises(TypeError):
        m.eval_batch([1, 2], [a, "state"])
    with pytest.raises(ValueError, match="closed"):
        m.eval_batch([1, 2], [a, closed])
    with pytest.raises(rwkvc.ArgumentError, match="same state"):
        m.eval_batch([1, 2], [a, a])
    with pytest.raises(rwkvc.ArgumentError, match="another shape"):
        m.eval_batch([1, 2], [a, other])
    with pytest.raises(rwkvc.ArgumentError):
        m.eval_batch([1, m.n_vocab], [a, b])
    with pytest.raises(rwkvc.ArgumentError):
        m.eval_batch([-1, 2], [a, b])
    assert (a.pos, b.pos, other.pos) == (0, 0, 0)


@pytest.mark.parametrize("kind", ["rwkv4", "gpt"])
def test_eval_batch_sample_draws_what_sample_draws(models, kind):
    """Each row's drawn token is the one Sampler.sample draws from that row's logits (twin states and samplers)."""
    m = rwkvc.Model(models[kind], threads=2)
    states = streams(m, 4)
    twins = [s.copy() for s in states] if kind == "rwkv4" else streams(m, 4)
    rules = [dict(temperature=0), dict(temperature=0.7, top_p=0.5), dict(temperature=1.0, top_k=5, ban=[3, 4]),
             dict(temperature=1.5, top_p=1.0)]
    samplers = [rwkvc.Sampler(seed=10 + i, **r) for i, r in enumerate(rules)]
    twin_samplers = [rwkvc.Sampler(seed=10 + i, **r) for i, r in enumerate(rules)]
    tokens = [65, 3, 255, 65]
    for step in range(4):
        n_ids = 100 if step == 3 else 0  # the last step draws among the first 100 ids only
        got = m.eval_batch_sample(tokens, states, samplers, n_ids=n_ids)
        logits = m.eval_batch(tokens, twins)
        want = [twin_samplers[i].sample(row(logits, i, m.n_vocab)[:n_ids or m.n_vocab]) for i in range(4)]
        assert got == want
        for i, t in enumerate(got):
            samplers[i].accept(t, b"x")
            twin_samplers[i].accept(t, b"x")
        tokens = got
    assert [s.pos for s in states] == [s.pos for s in twins]


def test_eval_batch_sample_needs_one_sampler_per_state(models):
    m = rwkvc.Model(models["rwkv4"], threads=2)
    states = streams(m, 2)
    with pytest.raises(ValueError):
        m.eval_batch_sample([1, 2], states, [rwkvc.Sampler()])
    with pytest.raises(TypeError):
        m.eval_batch_sample([1, 2], states, [rwkvc.Sampler(), "greedy"])

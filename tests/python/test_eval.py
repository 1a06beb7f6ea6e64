"""perplexity/score and LAMBADA give the numbers of `rwkv eval` for the same model and text."""

import json
import math

import pytest
from conftest import REPO, shared_file

import rwkvc

LAMBADA = "data/lambada/lambada_test.jsonl"


def close(a, b):
    return math.isclose(a, b, rel_tol=1e-8, abs_tol=1e-12)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("eval") / "text.txt"
    path.write_bytes(open(f"{REPO}/README.md", "rb").read()[:3000])
    return path


@pytest.mark.parametrize("kind,extra", [("rwkv4", {}), ("rwkv4", {"window": 100, "bos": 0}),
                                        ("gpt", {}), ("gpt", {"window": 32, "stride": 8})])
def test_score_equals_rwkv_eval(cli, models, text_file, kind, extra):
    flags = [x for k, v in extra.items() for x in (f"--{k}", v)]
    ref = json.loads(cli("eval", "-m", models[kind], "--data", text_file, "--json", "-q", *flags))
    m = rwkvc.Model(models[kind], threads=2)
    r = m.score(text_file.read_text(), **extra)
    assert (r.n_tokens, r.n_bytes, r.window, r.stride, r.context, r.n_windows) == (
        ref["tokens"], ref["bytes"], ref["window"], ref["stride"], ref["context"], ref["windows"])
    assert close(r.nll, ref["nll"]) and close(r.loss, ref["loss"]) and close(r.perplexity, ref["perplexity"])
    assert close(r.bits_per_byte, ref["bits_per_byte"]) and close(r.n_top1 / r.n_tokens, ref["top1_accuracy"])
    assert m.perplexity(text_file.read_text(), **extra) == r.perplexity


def test_score_of_token_ids_and_too_short(models):
    m = rwkvc.Model(models["rwkv4"])
    assert m.score(list(b"Hello there")).perplexity == m.perplexity("Hello there")
    with pytest.raises(ValueError, match="too short"):
        m.perplexity("x")


def test_progress_callback_stops_and_exceptions_are_reraised(models, text_file):
    m = rwkvc.Model(models["rwkv4"])
    text = text_file.read_text()
    seen = []
    r = m.score(text, window=64, progress=lambda done, total: seen.append((done, total)) or len(seen) == 2)
    assert r.stopped and len(seen) == 2 and seen[1][0] == r.n_tokens < seen[1][1]

    def boom(done, total):
        raise KeyError("from the callback")
    with pytest.raises(KeyError, match="from the callback"):
        m.score(text, window=64, progress=boom)
    assert not m.score(text).stopped  # the model is still usable

    def interrupt(done, total):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        m.lambada(["the last word"], progress=lambda step: interrupt(0, 0))


def test_lambada_equals_rwkv_eval(cli, models):
    path = shared_file(LAMBADA)
    ref = json.loads(cli("eval", "-m", models["rwkv4"], "--lambada", path, "--limit", 4, "--json", "-q"))
    m = rwkvc.Model(models["rwkv4"])
    steps = []
    r = m.lambada(path, limit=4, progress=steps.append)
    assert (r.n_examples, r.n_correct, r.n_target_tokens) == (ref["examples"], ref["correct"], ref["target_tokens"])
    assert close(r.sum_logprob, ref["sum_logprob"]) and close(r.perplexity, ref["perplexity"])
    assert [s.index for s in steps] == [0, 1, 2, 3] and steps[-1].total == 4
    passages = [json.loads(line)["text"] for line in open(path, encoding="utf-8").readlines()[:4]]
    assert m.lambada(passages) == r


def test_lambada_bad_inputs(models, tmp_path):
    m = rwkvc.Model(models["rwkv4"])
    with pytest.raises(ValueError, match="no space"):
        m.lambada(["oneword"])
    with pytest.raises(TypeError):
        m.lambada(42)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a b"}\nnot json\n')
    with pytest.raises(rwkvc.FormatError, match="2"):
        m.lambada(str(bad))
    with pytest.raises(rwkvc.RwkvIOError):
        m.lambada(str(tmp_path / "missing.jsonl"))

"""train() over the C trainer: a small run, progress reports, stopping, exceptions in the callback, resume
(and its refusal of damaged checkpoints without restart)."""

import json
import math
import os

import pytest

import rwkvc

SMALL = {"n_layer": 1, "n_embd": 16, "ctx_len": 16, "batch": 2, "eval_every": 2, "save_every": 2, "threads": 2,
         "measure_peak": 0, "val_windows": 4}


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("the quick brown fox jumps over the lazy dog. " * 60)
    return path


def test_small_run_reports_every_event(corpus, tmp_path):
    events = []
    last = rwkvc.train(corpus, tmp_path / "run", steps=4, progress=events.append, **SMALL)
    kinds = [e.event for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("step") == 4 and "saved" in kinds
    assert last == events[-1] and last.step == 4 and not last.stopped
    losses = [e.loss for e in events if e.event == "step"]
    assert all(0 < x < 10 for x in losses)
    log = [json.loads(line) for line in open(tmp_path / "run" / "train.jsonl")]
    assert len(log) == 4 and all(math.isclose(line["loss"], x, rel_tol=1e-5) for line, x in zip(log, losses))
    m = rwkvc.Model(tmp_path / "run" / "model.safetensors")
    assert (m.info.n_layer, m.info.n_embd) == (1, 16)
    assert len("".join(m.generate("the", max_tokens=8, temperature=0))) > 0


@pytest.mark.parametrize("arch,extra", [("rwkv7", {"head_size": 8}), ("gpt", {"n_head": 2})])
def test_other_architectures(corpus, tmp_path, arch, extra):
    last = rwkvc.train(corpus, tmp_path / "run", steps=2, arch=arch, **extra, **SMALL)
    assert last.step == 2 and math.isfinite(last.last_val_loss)
    info = rwkvc.Model(tmp_path / "run" / "model.safetensors").info
    assert (info.arch, info.version) == (("gpt", "gpt") if arch == "gpt" else ("rwkv", "7"))


def test_true_from_the_callback_stops_then_resume_continues(corpus, tmp_path):
    run = tmp_path / "run"
    last = rwkvc.train(corpus, run, steps=6, progress=lambda p: p.event == "step" and p.step == 3, **SMALL)
    assert last.stopped and last.step == 3
    assert not os.path.exists(run / "model.safetensors")
    last = rwkvc.resume(run)
    assert last.step == 6 and not last.stopped and os.path.exists(run / "model.safetensors")


def test_an_exception_in_the_callback_stops_cleanly_and_is_reraised(corpus, tmp_path):
    run = tmp_path / "run"

    def progress(p):
        if p.event == "step" and p.step == 2:
            raise RuntimeError("enough")
    with pytest.raises(RuntimeError, match="enough"):
        rwkvc.train(corpus, run, steps=6, progress=progress, **SMALL)
    assert os.path.exists(run / "model-00000002.safetensors")  # the checkpoint of the step it stopped at
    assert rwkvc.resume(run, steps=3).step == 3


def test_resume_refuses_damaged_checkpoints_unless_restart(corpus, tmp_path):
    run = tmp_path / "run"
    rwkvc.train(corpus, run, steps=4, **SMALL)
    states = sorted(p for p in os.listdir(run) if p.startswith("train_state-"))
    for name in states:
        with open(run / name, "r+b") as f:
            f.truncate(100)
    with pytest.raises(rwkvc.RwkvError, match="can be resumed"):
        rwkvc.resume(run)
    assert sorted(p for p in os.listdir(run) if p.startswith("train_state-")) == states
    last = rwkvc.resume(run, restart=True)
    assert last.step == 4 and not last.stopped


def test_init_model_and_tokenize_file(corpus, tmp_path):
    path = rwkvc.init_model(tmp_path / "m.safetensors", n_layer=1, n_embd=8, n_vocab=300, seed=1)
    assert rwkvc.Model(path).info.n_vocab == 300
    gpt = rwkvc.init_model(tmp_path / "g.safetensors", arch="gpt", n_layer=1, n_embd=8, n_ctx=16)
    assert rwkvc.Model(gpt).info.arch == "gpt"
    v6 = rwkvc.init_model(tmp_path / "v6.safetensors", arch="rwkv6", uniform=True, n_layer=1, n_embd=64, dtype="bf16")
    assert rwkvc.Model(v6).info.version == "6"
    with pytest.raises(ValueError, match="dtype"):
        rwkvc.init_model(tmp_path / "x", dtype="q8_0")
    assert rwkvc.tokenize_file(corpus, tmp_path / "t.bin") == (os.path.getsize(corpus), 256)


def test_bad_options(corpus, tmp_path):
    with pytest.raises(TypeError, match="unknown train option"):
        rwkvc.train(corpus, tmp_path / "a", n_layers=2)
    with pytest.raises(TypeError):
        rwkvc.train(corpus, tmp_path / "b", steps="many")
    with pytest.raises(ValueError, match="out of range"):
        rwkvc.train(corpus, tmp_path / "c", n_layer=2**40)
    with pytest.raises(rwkvc.RwkvError) as info:
        rwkvc.train(corpus, tmp_path / "d", n_layer=-1, steps=1)
    assert "\n" not in str(info.value)
    with pytest.raises(rwkvc.RwkvIOError):
        rwkvc.train(tmp_path / "missing.txt", tmp_path / "e", steps=1, **SMALL)
    with pytest.raises(TypeError, match="unknown init option"):
        rwkvc.init_model(tmp_path / "x", layers=1)

"""Model and State: loading every format, info, logits as arrays or buffers, state views, copies, resets."""

import json
import math
import struct

import pytest
from conftest import shared_file

import rwkvc


def floats(a):
    """The values of a logits/state array as a flat list, whichever kind of array it is."""
    return memoryview(a).cast("B").cast("f").tolist()


def test_arrays_are_numpy_exactly_when_numpy_is_importable(models):
    try:
        import numpy
    except ImportError:
        numpy = None
    assert rwkvc.HAVE_NUMPY == (numpy is not None)
    m = rwkvc.Model(models["rwkv4"])
    logits = m.eval(65, m.new_state())
    if numpy is not None:
        assert isinstance(logits, numpy.ndarray) and logits.dtype == numpy.float32 and logits.shape == (256,)
    else:
        assert isinstance(logits, memoryview) and logits.format == "f" and logits.shape == (256,)


def test_info_matches_rwkv_info(cli, models):
    m = rwkvc.Model(models["rwkv4"])
    info = m.info
    assert (info.arch, info.version, info.format, info.device, info.dtype) == ("rwkv", "4", "safetensors", "cpu",
                                                                               "f32")
    assert (info.n_layer, info.n_embd, info.n_vocab, info.n_ffn) == (2, 32, 256, 128)
    assert info.state_floats == 2 * 5 * 32 and m.n_vocab == 256
    text = cli("info", models["rwkv4"]).decode()
    assert str(info.n_params) in text.replace(",", "")
    g = rwkvc.Model(models["gpt"]).info
    assert (g.arch, g.version, g.n_ctx, g.n_head, g.state_floats) == ("gpt", "gpt", 48, 2, 0)


@pytest.mark.parametrize("relative", ["testvectors/rwkv4/tiny/model.bf16.pth", "testvectors/rwkv5/tiny/model.f16.pth",
                                      "testvectors/rwkv7/tiny/model.f32.safetensors",
                                      "reference/rwkv-cpp/tiny-rwkv-5v1-730K-Q5_0.bin",
                                      "reference/rwkv-cpp/tiny-rwkv-6v0-3m-Q5_1.bin"])
def test_loads_every_format_and_version(relative):
    m = rwkvc.Model(shared_file(relative), threads=1)
    assert m.info.format in ("pth", "safetensors", "rwkv.cpp") and m.info.arch == "rwkv"
    logits = m.eval([1, 2, 3], m.new_state())
    assert len(floats(logits)) == m.n_vocab and all(math.isfinite(x) for x in floats(logits))


def test_logits_and_state_match_the_reference_vectors():
    folder = "testvectors/rwkv4/tiny/"
    case = json.load(open(shared_file(folder + "case.json")))
    tokens = case["inputs"][0]
    m = rwkvc.Model(shared_file(folder + "model.f32.safetensors"))
    state = m.new_state()
    got = floats(m.eval(tokens, state, all_logits=True))
    want = struct.unpack(f"<{len(got)}f", open(shared_file(folder + "logits_rnn.f32"), "rb").read()[:4 * len(got)])
    assert max(abs(a - b) for a, b in zip(got, want)) < 1e-4
    got = floats(state.data)
    raw = open(shared_file(folder + "state_final.f32"), "rb").read()[:4 * len(got)]
    want = struct.unpack(f"<{len(got)}f", raw)
    assert all(abs(a - b) <= 2e-4 + 3e-4 * abs(b) for a, b in zip(got, want))


def test_sequence_mode_equals_token_by_token(models):
    for kind in ("rwkv4", "gpt"):
        m = rwkvc.Model(models[kind], threads=2)
        tokens = list(b"Hello world")
        seq = floats(m.eval(tokens, m.new_state(), all_logits=True))
        state = m.new_state()
        one = [x for t in tokens for x in floats(m.eval(t, state))]
        assert len(seq) == len(tokens) * 256
        assert max(abs(a - b) for a, b in zip(seq, one)) < 1e-4
        last = floats(m.eval(tokens, m.new_state()))
        assert max(abs(a - b) for a, b in zip(last, seq[-256:])) < 1e-5


def test_threads_do_not_change_results(models):
    m = rwkvc.Model(models["rwkv4"], threads=1)
    a = floats(m.eval(list(b"abc"), m.new_state()))
    m.threads = 2
    assert m.threads == 2
    assert floats(m.eval(list(b"abc"), m.new_state())) == a
    m.threads = None
    assert m.threads is None


def test_eval_into_a_caller_buffer(models):
    import array
    m = rwkvc.Model(models["rwkv4"])
    out = array.array("f", bytes(4 * 256))
    result = m.eval([1, 2], m.new_state(), out=out)
    assert result is out
    assert out.tolist() == floats(m.eval([1, 2], m.new_state()))
    two = bytearray(4 * 512)
    m.eval([1, 2], m.new_state(), all_logits=True, out=memoryview(two).cast("f"))
    assert max(abs(a - b) for a, b in zip(struct.unpack("256f", two[1024:]), out.tolist())) < 1e-5


def test_state_data_is_a_live_view(models):
    m = rwkvc.Model(models["rwkv4"])
    state = m.new_state()
    data = state.data
    assert len(floats(data)) == state.size == 320
    m.eval(5, state)
    assert floats(data) == floats(state.data) and any(x != 0 for x in floats(data))
    fresh = m.new_state()
    view = memoryview(fresh.data).cast("B").cast("f") if not isinstance(fresh.data, memoryview) else fresh.data
    for i, x in enumerate(floats(data)):
        view[i] = x
    assert floats(m.eval(6, fresh)) == floats(m.eval(6, state))


def test_state_copy_reset_pos_memory(models):
    m = rwkvc.Model(models["rwkv4"])
    state = m.new_state()
    m.eval(list(b"Hi"), state)
    assert state.pos == 2
    twin = state.copy()
    assert floats(twin.data) == floats(state.data)
    assert floats(m.eval(7, twin)) == floats(m.eval(7, state))
    state.reset()
    assert state.pos == 0
    other = m.new_state()
    assert floats(state.data) == floats(other.data)
    other.copy_from(twin)
    assert floats(other.data) == floats(twin.data)
    used, reserved = state.memory
    assert used == 320 * 4 and reserved >= used


def test_gpt_state_is_a_kv_cache(models):
    m = rwkvc.Model(models["gpt"])
    state = m.new_state()
    m.eval(list(b"abc"), state)
    assert state.pos == 3 and state.size == 0 and state.memory[0] > 0
    with pytest.raises(rwkvc.UnsupportedError):
        state.data
    with pytest.raises(rwkvc.UnsupportedError):
        state.copy()


def test_views_and_states_outlive_close(models):
    m = rwkvc.Model(models["rwkv4"])
    state = m.new_state()
    m.eval(list(b"abc"), state)
    data = state.data
    expected = floats(data)
    m.close()
    state.close()
    assert floats(data) == expected  # the memory is kept for the view
    del state
    assert floats(data) == expected


def test_feed_without_logits_and_fingerprint(models):
    m = rwkvc.Model(models["rwkv4"])
    a, b = m.new_state(), m.new_state()
    m.feed(list(b"Hello"), a)
    m.eval(list(b"Hello"), b)
    assert floats(a.data) == floats(b.data)
    assert m.fingerprint == rwkvc.Model(models["rwkv4"]).fingerprint != rwkvc.Model(models["gpt"]).fingerprint


def test_context_manager_closes(models):
    with rwkvc.Model(models["rwkv4"]) as m:
        assert not m.closed
    assert m.closed
    assert "Model" in repr(m)


@pytest.mark.parametrize("dtype", [None, "bf16"])
def test_convert_equals_rwkv_convert(cli, tmp_path, dtype):
    source = shared_file("reference/rwkv-cpp/tiny-rwkv-4v0-660K-Q5_1.bin")
    rwkvc.convert_to_safetensors(source, tmp_path / "py.safetensors", dtype=dtype)
    cli("convert", source, tmp_path / "cli.safetensors", *(["--dtype", dtype] if dtype else []))
    assert (tmp_path / "py.safetensors").read_bytes() == (tmp_path / "cli.safetensors").read_bytes()
    assert rwkvc.Model(tmp_path / "py.safetensors").info.dtype == (dtype or "f32")
    with pytest.raises(ValueError):
        rwkvc.convert_to_safetensors(source, tmp_path / "x", dtype="f8")


def test_convert_to_hf_equals_rwkv_convert(cli, models, tmp_path):
    rwkvc.convert_to_hf(models["rwkv4"], tmp_path / "py")
    cli("convert", models["rwkv4"], tmp_path / "cli", "--layout", "hf")
    for name in ("config.json", "model.safetensors"):
        assert (tmp_path / "py" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes()
    info = rwkvc.Model(tmp_path / "py").info
    assert (info.layout, info.version) == ("transformers", "4")
    assert rwkvc.Model(models["rwkv4"]).info.layout == "official"
    with pytest.raises(rwkvc.UnsupportedError):
        rwkvc.convert_to_hf(models["gpt"], tmp_path / "gpt")

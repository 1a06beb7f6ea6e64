"""Bad input never crashes the interpreter: library errors become exceptions with the library's one-line
message; closed objects, wrong types and wrong shapes are refused before any pointer reaches the library."""

import array

import pytest

import rwkvc


def one_line(e):
    text = str(e.value)
    assert text and "\n" not in text
    return text


def test_missing_and_garbage_files(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(rwkvc.RwkvIOError) as e:
        rwkvc.Model(missing)
    assert str(missing) in one_line(e) and isinstance(e.value, OSError) and e.value.status == "I/O error"
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00\x01not a checkpoint" * 10)
    with pytest.raises(rwkvc.RwkvError) as e:
        rwkvc.Model(garbage)
    assert one_line(e) and e.value.code in (2, 3)
    with pytest.raises(rwkvc.RwkvError) as e:
        rwkvc.Tokenizer(missing)
    one_line(e)


def test_unknown_device(models):
    with pytest.raises(rwkvc.UnsupportedError) as e:
        rwkvc.Model(models["rwkv4"], device="tpu")
    one_line(e)


def test_bad_tokens(models):
    m = rwkvc.Model(models["rwkv4"])
    s = m.new_state()
    with pytest.raises(rwkvc.ArgumentError) as e:
        m.eval(256, s)
    one_line(e)
    with pytest.raises(rwkvc.ArgumentError):
        m.eval([1, 2, -3], s)
    assert s.pos == 0  # checked before anything is fed
    with pytest.raises(OverflowError):
        m.eval(2**40, s)
    with pytest.raises(TypeError):
        m.eval("abc", s)
    with pytest.raises(TypeError):
        m.eval([1.5], s)
    with pytest.raises(TypeError):
        m.eval(None, s)
    with pytest.raises(ValueError):
        m.eval([], s)
    with pytest.raises(TypeError):
        m.eval(1, "state")
    with pytest.raises(rwkvc.ArgumentError):
        rwkvc.Tokenizer().decode([256])


def test_wrong_buffers(models):
    m = rwkvc.Model(models["rwkv4"])
    s = m.new_state()
    with pytest.raises(ValueError, match="256"):
        m.eval(1, s, out=array.array("f", [0.0] * 10))
    with pytest.raises(TypeError):
        m.eval(1, s, out=array.array("d", [0.0] * 256))
    with pytest.raises(TypeError):
        m.eval(1, s, out=[0.0] * 256)
    with pytest.raises(ValueError, match="read-only"):
        m.eval(1, s, out=memoryview(bytes(1024)).cast("f"))
    with pytest.raises(ValueError):
        m.eval([1, 2], s, all_logits=True, out=array.array("f", [0.0] * 256))
    with pytest.raises(TypeError):
        rwkvc.Sampler().sample("logits")
    with pytest.raises(TypeError):
        rwkvc.Sampler().penalize([1.0, 2.0])
    assert s.pos == 0


def test_gpt_context_overflow(models):
    m = rwkvc.Model(models["gpt"])
    s = m.new_state()
    m.eval([1] * 48, s)
    with pytest.raises(rwkvc.ArgumentError, match="context"):
        m.eval(1, s)


def test_state_of_another_shape(models, cli, tmp_path):
    wide = tmp_path / "wide.safetensors"
    cli("init", "--layers", 1, "--embd", 16, "--out", wide)
    m, other = rwkvc.Model(models["rwkv4"]), rwkvc.Model(wide)
    with pytest.raises(rwkvc.ArgumentError) as e:
        m.eval(1, other.new_state())
    one_line(e)
    with pytest.raises(rwkvc.RwkvError):
        m.new_state().copy_from(other.new_state())
    with pytest.raises(rwkvc.RwkvError):
        rwkvc.Model(models["gpt"]).new_state().copy_from(rwkvc.Model(models["gpt"]).new_state())


def test_every_method_of_a_closed_object_raises(models, tmp_path):
    m = rwkvc.Model(models["rwkv4"])
    s = m.new_state()
    tok = rwkvc.Tokenizer()
    stream = tok.stream()
    sampler = rwkvc.Sampler()
    for obj in (m, s, tok, stream, sampler):
        obj.close()
        obj.close()  # twice is harmless
        assert obj.closed
    live = rwkvc.Model(models["rwkv4"])
    calls = [lambda: m.eval(1, live.new_state()), lambda: live.eval(1, s), lambda: m.new_state(),
             lambda: m.eval_batch([1], [live.new_state()]), lambda: live.eval_batch([1], [s]),
             lambda: m.feed([1], live.new_state()), lambda: m.fingerprint, lambda: setattr(m, "threads", 2),
             lambda: "".join(m.generate("Hi", max_tokens=2)), lambda: m.perplexity("Hello"),
             lambda: m.lambada(["a b"]), lambda: s.pos, lambda: s.size, lambda: s.memory, lambda: s.data,
             lambda: s.reset(), lambda: s.copy(), lambda: s.save(tmp_path / "s"), lambda: s.load(tmp_path / "s"),
             lambda: live.new_state().copy_from(s), lambda: tok.encode("x"), lambda: tok.decode([1]),
             lambda: tok.stream(), lambda: stream.push(1), lambda: stream.flush(), lambda: stream.pending,
             lambda: sampler.sample([1.0]), lambda: sampler.distribution([1.0]), lambda: sampler.accept(1),
             lambda: sampler.occurrence(1), lambda: sampler.reset(), lambda: sampler.reseed(1),
             lambda: sampler.uniform(), lambda: sampler.penalize(array.array("f", [1.0])),
             lambda: "".join(live.generate("Hi", max_tokens=2, sampler=sampler)),
             lambda: "".join(live.generate("Hi", max_tokens=2, tokenizer=tok))]
    for call in calls:
        with pytest.raises(ValueError, match="closed"):
            call()


def test_a_closed_model_keeps_its_states_working(models):
    m = rwkvc.Model(models["rwkv4"])
    s = m.new_state()
    m.close()
    s.reset()
    assert s.pos == 0 and s.size == 320


def test_bad_path_types(tmp_path):
    with pytest.raises(TypeError):
        rwkvc.Model(42)
    with pytest.raises(TypeError):
        rwkvc.Tokenizer(None)
    with pytest.raises(TypeError):
        rwkvc.Model(tmp_path, tokenizer=3)
    with pytest.raises(ValueError, match="NUL"):
        rwkvc.Model(str(tmp_path) + "/a\0b")

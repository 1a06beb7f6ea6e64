"""generate() gives the text and tokens of `rwkv generate` for the same model, prompt, parameters and seed;
state files written by either side continue identically on the other."""

import json
import os

import pytest
from conftest import shared_file

import rwkvc

SAMPLED = {"temperature": 0.8, "top_p": 0.7, "top_k": 40, "alpha_presence": 0.3, "alpha_frequency": 0.1,
           "alpha_decay": 0.99}
CLI_FLAGS = {"temperature": "--temp", "top_p": "--top-p", "top_k": "--top-k", "alpha_presence": "--presence",
             "alpha_frequency": "--frequency", "alpha_decay": "--decay", "seed": "--seed"}


def cli_generate(cli, model, prompt, n, tokenizer="bytes", extra=(), **sampling):
    """`rwkv generate --json`'s object for these arguments."""
    args = ["generate", "-m", model, "--tokenizer", tokenizer, "-p", prompt, "-n", n, "--json", "-q", *extra]
    for name, value in sampling.items():
        args += [CLI_FLAGS[name], value]
    return json.loads(cli(*args))


def assert_same(g, reference):
    assert g.tokens == reference["tokens"]
    assert g.text == reference["text"]
    assert g.stop_reason == reference["stop_reason"]
    assert len(g.prompt_tokens) == reference["prompt_tokens"]


def _shared_model(relative, tokenizer="bytes"):
    return lambda cli, tmp: (shared_file(relative), tokenizer)


def _init_model(vocab, tokenizer):
    def make(cli, tmp):
        path = os.path.join(tmp, f"v{vocab}.safetensors")
        if not os.path.exists(path):
            cli("init", "--layers", 1, "--embd", 8, "--vocab", vocab, "--seed", 9, "--out", path)
        return path, shared_file(tokenizer) if tokenizer != "bytes" else "bytes"
    return make


# name: (model maker, prompt); the test-vector models know only the ids 0..63, so their prompts are digits
MODELS = {
    "rwkv4-init": (None, "Hello"),
    "gpt-init": (None, "Hello"),
    "rwkv4-pth": (_shared_model("testvectors/rwkv4/tiny/model.f32.pth"), "0123"),
    "rwkv5-safetensors": (_shared_model("testvectors/rwkv5/tiny/model.f32.safetensors"), "0123"),
    "rwkv6-bf16": (_shared_model("testvectors/rwkv6/tiny/model.bf16.safetensors"), "0123"),
    "rwkv7-f16": (_shared_model("testvectors/rwkv7/tiny/model.f16.safetensors"), "0123"),
    "rwkvcpp-4-q5_1": (_shared_model("reference/rwkv-cpp/tiny-rwkv-4v0-660K-Q5_1.bin"), "Hello"),
    "rwkvcpp-5.2-f32": (_shared_model("reference/rwkv-cpp/tiny-rwkv-5v2-730K-FP32.bin"), "Hello"),
    "rwkvcpp-6-q5_0": (_shared_model("reference/rwkv-cpp/tiny-rwkv-6v0-3m-Q5_0.bin"), "Hello"),
    "rwkvcpp-7-f16": (_shared_model("reference/rwkv-cpp/tiny-rwkv-7v0-834K-FP16.bin"), "Hello"),
    "neox": (_init_model(50277, "reference/rwkv-cpp/20B_tokenizer.json"), "Hello, wörld"),
    "world": (_init_model(65536, "reference/rwkv-cpp/rwkv_vocab_v20230424.txt"), "Hello, 世界"),
}


@pytest.fixture(params=sorted(MODELS))
def case(request, cli, models, tmp_path_factory):
    """(model path, tokenizer, prompt) of one model kind."""
    make, prompt = MODELS[request.param]
    if make is None:
        return models[request.param.split("-")[0]], "bytes", prompt
    path, tokenizer = make(cli, str(tmp_path_factory.getbasetemp()))
    return path, tokenizer, prompt


def test_readme_example_equals_cli_greedy(cli, models):
    m = rwkvc.Model(models["rwkv4"], threads=2)
    text = "".join(m.generate("Hello", max_tokens=16, temperature=0.0))
    assert text.encode() == cli("generate", "-m", models["rwkv4"], "-p", "Hello", "-n", 16, "--temp", 0, "-q")


def test_greedy_equals_cli(cli, case):
    path, tokenizer, prompt = case
    m = rwkvc.Model(path, threads=2, tokenizer=tokenizer)
    g = m.generate(prompt, max_tokens=24, temperature=0)
    pieces = list(g)
    assert "".join(pieces) == g.text
    assert_same(g, cli_generate(cli, path, prompt, 24, tokenizer, temperature=0))


def test_sampled_equals_cli_for_the_same_seed(cli, case):
    path, tokenizer, prompt = case
    m = rwkvc.Model(path, tokenizer=tokenizer)
    for seed in (1, 20240601):
        g = m.generate(prompt, max_tokens=30, seed=seed, **SAMPLED)
        "".join(g)
        assert_same(g, cli_generate(cli, path, prompt, 30, tokenizer, seed=seed, **SAMPLED))


def test_default_sampling_equals_cli(cli, models):
    m = rwkvc.Model(models["rwkv4"])
    g = m.generate("Hi", max_tokens=40, seed=77)
    "".join(g)
    assert_same(g, cli_generate(cli, models["rwkv4"], "Hi", 40, seed=77))


def test_stop_strings_and_tokens_equal_cli(cli, models):
    path = models["rwkv4"]
    m = rwkvc.Model(path)
    free = cli_generate(cli, path, "Hi", 60, seed=5)
    text = free["text"]
    stop = text[20:22] if len(text) > 22 else text[-2:]
    g = m.generate("Hi", max_tokens=60, seed=5, stop=[stop, "\uffff"])
    "".join(g)
    assert_same(g, cli_generate(cli, path, "Hi", 60, extra=("--stop", stop, "--stop", "\uffff"), seed=5))
    assert g.stop_reason == "stop" and stop not in g.text
    stop_token = free["tokens"][10]
    g = m.generate("Hi", max_tokens=60, seed=5, stop_tokens=[stop_token])
    "".join(g)
    assert_same(g, cli_generate(cli, path, "Hi", 60, extra=("--stop-token", stop_token), seed=5))
    assert g.stop_reason == "stop_token"


def test_gpt_stops_when_its_context_is_full(cli, models):
    m = rwkvc.Model(models["gpt"])
    g = m.generate("Hello", max_tokens=100, temperature=0)
    "".join(g)
    assert g.stop_reason == "context"
    assert_same(g, cli_generate(cli, models["gpt"], "Hello", 100, temperature=0))
    state = m.new_state()
    g = m.generate("Hello", max_tokens=100, temperature=0, state=state)
    "".join(g)
    assert g.stop_reason == "context" and state.pos == 48
    with pytest.raises(ValueError, match="context"):
        m.generate("x" * 100, max_tokens=1)


def test_pieces_are_yielded_as_they_are_generated(models):
    m = rwkvc.Model(models["rwkv4"])
    g = m.generate("Hello", max_tokens=50, seed=3)
    first = next(g)
    assert first and len(g.tokens) < 50
    rest = "".join(g)
    assert first + rest == g.text


def test_sampler_object_and_prompt_ids(cli, models):
    m = rwkvc.Model(models["rwkv4"])
    sampler = rwkvc.Sampler(seed=11, **SAMPLED)
    g = m.generate([72, 105], max_tokens=20, sampler=sampler)
    "".join(g)
    assert_same(g, cli_generate(cli, models["rwkv4"], "Hi", 20, seed=11, **SAMPLED))


def test_state_saved_in_python_continues_in_the_cli(cli, models, tmp_path):
    path = models["rwkv4"]
    m = rwkvc.Model(path)
    state = m.new_state()
    g = m.generate("Hello", max_tokens=8, temperature=0, state=state)
    "".join(g)
    assert state.pos == len(g.prompt_tokens) + 8
    state.save(tmp_path / "py.state")
    cli("generate", "-m", path, "-p", "Hello", "-n", 8, "--temp", 0, "-q", "--state-out", tmp_path / "cli.state")
    assert (tmp_path / "py.state").read_bytes() == (tmp_path / "cli.state").read_bytes()
    cont = cli_generate(cli, path, " and", 12, extra=("--state-in", tmp_path / "py.state"), temperature=0)
    g2 = m.generate(" and", max_tokens=12, temperature=0, state=state)
    "".join(g2)
    assert_same(g2, cont)


def test_state_saved_by_the_cli_continues_in_python(cli, models, tmp_path):
    path = models["rwkv4"]
    cli("generate", "-m", path, "-p", "Once", "-n", 6, "--seed", 4, "-q", "--state-out", tmp_path / "s")
    m = rwkvc.Model(path)
    state = m.new_state().load(tmp_path / "s")
    g = m.generate(" upon", max_tokens=16, seed=8, state=state, **SAMPLED)
    "".join(g)
    assert_same(g, cli_generate(cli, path, " upon", 16, extra=("--state-in", tmp_path / "s"), seed=8, **SAMPLED))


def test_state_file_of_another_model_is_refused(cli, models, tmp_path):
    other = tmp_path / "other.safetensors"
    cli("init", "--layers", 2, "--embd", 32, "--vocab", 256, "--seed", 4, "--out", other)
    cli("generate", "-m", other, "-p", "Hi", "-n", 2, "-q", "--state-out", tmp_path / "s")
    state = rwkvc.Model(models["rwkv4"]).new_state()
    before = bytes(memoryview(state.data).cast("B"))
    with pytest.raises(rwkvc.RwkvError) as info:
        state.load(tmp_path / "s")
    assert "\n" not in str(info.value) and str(info.value)
    assert bytes(memoryview(state.data).cast("B")) == before


def test_generate_argument_errors(models):
    m = rwkvc.Model(models["rwkv4"])
    with pytest.raises(ValueError, match="empty"):
        m.generate("", max_tokens=4)
    with pytest.raises(TypeError, match="unexpected options"):
        m.generate("Hi", max_tokens=4, temprature=0)
    with pytest.raises(TypeError, match="not both"):
        m.generate("Hi", sampler=rwkvc.Sampler(), temperature=0)
    with pytest.raises(ValueError, match="vocabulary"):
        m.generate("Hi", stop_tokens=[256])
    with pytest.raises(ValueError, match="vocabulary"):
        m.generate("Hi", ban=[300])
    with pytest.raises(ValueError):
        m.generate("Hi", max_tokens=-1)
    with pytest.raises(rwkvc.ArgumentError, match="top_p"):
        m.generate("Hi", top_p=2.0)
    with pytest.raises(rwkvc.ArgumentError):
        "".join(m.generate([1000], max_tokens=2))
    assert list(m.generate("Hi", max_tokens=0)) == []

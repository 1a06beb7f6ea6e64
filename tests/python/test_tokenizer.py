"""Tokenizer: the three kinds, ids equal to `rwkv tokenize` and to the shared reference ids, streaming decode."""

import unicodedata

import pytest
from conftest import shared_file

import rwkvc

NEOX = "reference/rwkv-cpp/20B_tokenizer.json"
WORLD = "reference/rwkv-cpp/rwkv_vocab_v20230424.txt"


def test_bytes_tokenizer():
    tok = rwkvc.Tokenizer()
    assert (tok.kind, tok.vocab_size, tok.eos) == ("bytes", 256, None)
    assert tok.encode("hé") == [104, 195, 169] == tok.encode(b"h\xc3\xa9")
    assert tok.decode([104, 195, 169]) == "hé"
    assert tok.decode_bytes([255]) == b"\xff" and tok.decode([255]) == "\ufffd"


@pytest.mark.parametrize("relative,ids", [(NEOX, "testvectors/tokenizer/neox20b.ids"),
                                          (WORLD, "testvectors/tokenizer/world.ids")])
def test_reference_ids(relative, ids):
    tok = rwkvc.Tokenizer(shared_file(relative))
    text = open(shared_file("testvectors/tokenizer/mixed.txt"), "rb").read()
    expected = [int(x) for x in open(shared_file(ids)).read().split()]
    assert tok.encode(text) == expected
    if tok.kind == "neox":  # NeoX normalises the text to NFC first, so its ids decode to the NFC form
        assert tok.decode(expected) == unicodedata.normalize("NFC", text.decode())
    else:
        assert tok.decode_bytes(expected) == text


@pytest.mark.parametrize("relative", ["bytes", NEOX, WORLD])
def test_ids_equal_rwkv_tokenize(cli, relative):
    path = relative if relative == "bytes" else shared_file(relative)
    tok = rwkvc.Tokenizer(path)
    text = "Hello, wörld! 12 345\n\tcafé — 世界 ﬁ"
    out = cli("tokenize", "--tokenizer", path, input=text.encode())
    assert tok.encode(text) == [int(x) for x in out.split()]
    assert tok.kind == {"bytes": "bytes", NEOX: "neox", WORLD: "world"}[relative]
    if relative != "bytes":
        assert tok.eos == 0


def test_stream_completes_characters():
    tok = rwkvc.Tokenizer()
    stream = tok.stream()
    assert stream.push(0xE4) == "" and stream.pending == 1
    assert stream.push(0xB8) == ""
    assert stream.push(0x96) == "世" and stream.pending == 0
    assert stream.push(0xE4) == ""
    assert stream.flush() == "\ufffd"
    raw = tok.stream(raw=True)
    assert raw.push(0xE4) == b"" and raw.flush() == b"\xe4"


def test_neox_rejects_invalid_utf8_with_the_offset():
    tok = rwkvc.Tokenizer(shared_file(NEOX))
    with pytest.raises(rwkvc.ArgumentError, match="offset|byte"):
        tok.encode(b"ab\xff")

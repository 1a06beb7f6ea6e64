"""Text generation: the loop of ``rwkv generate``, as an iterator of text pieces.

The steps are those of the command, in the same order and with the same
library calls, so that the same model, prompt, sampling parameters and seed
give the same text: the prompt is fed in sequence mode 256 tokens at a time,
then each step samples from the ids the tokenizer can print, stops at the
end-of-text token or a stop token, records the token with the sampler,
decodes it through a streaming decoder (complete UTF-8 characters only) and
feeds it back for the next logits.
"""

from . import _buffers
from .model import State
from .sampler import Sampler

#: Prompt tokens per sequence-mode call, as ``rwkv generate --chunk``'s default.
PROMPT_CHUNK = 256

_SAMPLING_OPTIONS = ("temperature", "top_p", "top_k", "alpha_presence", "alpha_frequency", "alpha_decay", "ban",
                     "seed")


class Generation:
    """An iterator of the text pieces of one generation, and what it produced.

    Iterate it (or ``"".join`` it) to run the generation. Afterwards:
    ``text`` is the text yielded, ``tokens`` the ids sampled (stop tokens
    excluded), ``prompt_tokens`` the prompt's ids, ``stop_reason`` one of
    "length" (max_tokens reached), "eos" (the end-of-text token), "stop" (a
    stop string; the text ends before it), "stop_token", "context" (a GPT's
    context is full); ``state`` the State, which holds the prompt and every
    token yielded once the iteration has ended (as ``rwkv generate
    --state-out`` saves it).
    """

    def __init__(self, model, prompt, max_tokens=200, *, sampler=None, stop=(), stop_tokens=(), ignore_eos=False,
                 state=None, tokenizer=None, **sampling):
        """Checks every argument (see Model.generate); nothing is fed until the first piece is asked for."""
        unknown = set(sampling) - set(_SAMPLING_OPTIONS)
        if unknown:
            raise TypeError(f"generate() got unexpected options {sorted(unknown)}; sampling options are "
                            f"{', '.join(_SAMPLING_OPTIONS)}")
        self.model = model
        self.tokenizer = model.tokenizer if tokenizer is None else tokenizer
        self.max_tokens = _buffers.token_in(max_tokens, "max_tokens")
        if self.max_tokens < 0:
            raise ValueError("max_tokens must be >= 0")
        self.prompt_tokens = self._prompt_tokens(prompt)
        self.stops = _stop_strings(stop)
        self.stop_tokens = self._vocab_ids(stop_tokens, "stop_tokens")
        if sampler is None:
            self._vocab_ids(sampling.get("ban", ()), "ban")
            sampler = Sampler(**sampling)
        elif sampling:
            raise TypeError(f"give either sampler= or sampling options ({', '.join(sorted(sampling))}), not both")
        elif not isinstance(sampler, Sampler):
            raise TypeError(f"sampler must be a Sampler, not {type(sampler).__name__}")
        self.sampler = sampler
        if state is not None and not isinstance(state, State):
            raise TypeError(f"state must be a State, not {type(state).__name__}")
        self._feed_last = state is not None  # a caller's state also takes the last token, as --state-out
        self.state = state if state is not None else model.new_state()
        self.eos = None if ignore_eos else self.tokenizer.eos
        vocab = self.tokenizer.vocab_size
        self._n_sample = vocab if 0 < vocab < model.n_vocab else model.n_vocab
        self.tokens = []
        self.text = ""
        self.stop_reason = None
        self._buffer = ""
        self._steps = self._run()

    def _prompt_tokens(self, prompt):
        if isinstance(prompt, (str, bytes, bytearray)):
            ids = self.tokenizer.encode(prompt)
        else:
            ids = _buffers.token_list(prompt, "prompt")
        if not ids:
            raise ValueError("the prompt is empty (the next token is predicted from the last prompt token)")
        n_ctx = self.model.info.n_ctx
        if n_ctx and len(ids) > n_ctx:
            raise ValueError(f"the prompt is {len(ids)} tokens, longer than the model's context of {n_ctx} positions")
        return ids

    def _vocab_ids(self, ids, name):
        ids = _buffers.token_list(ids, name)
        for t in ids:
            if not 0 <= t < self.model.n_vocab:
                raise ValueError(f"{name}: id {t} is outside the model's vocabulary [0, {self.model.n_vocab})")
        return ids

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._steps)

    def _run(self):
        model, state, sampler, tok = self.model, self.state, self.sampler, self.tokenizer
        for i in range(0, len(self.prompt_tokens), PROMPT_CHUNK):
            chunk = self.prompt_tokens[i:i + PROMPT_CHUNK]
            logits = model.eval(chunk[0] if len(chunk) == 1 else chunk, state)
        stream = tok.stream()
        n_ctx = model.info.n_ctx
        self.stop_reason = "length"
        # on a GPU each token fed also draws the next one there: only the token comes back, not the logits
        device_draw, drawn = model.device != "cpu", None
        for i in range(self.max_tokens):
            t = drawn if drawn is not None else sampler.sample(logits[:self._n_sample])
            if t == self.eos or t in self.stop_tokens:
                self.stop_reason = "eos" if t == self.eos else "stop_token"
                break
            sampler.accept(t, tok.decode_bytes([t]))
            self.tokens.append(t)
            last = i + 1 == self.max_tokens
            piece = stream.push(t) + (stream.flush() if last else "")
            out = self._emit(piece, last)
            if out:
                yield out
            full = n_ctx and state.pos >= n_ctx  # a GPT's context: no token can be fed any more
            if last or self.stop_reason == "stop":
                if self._feed_last and not full:
                    model.feed([t], state)
                break
            if full:
                self.stop_reason = "context"
                break
            if device_draw:
                drawn = model.eval_batch_sample([t], [state], [sampler], n_ids=self._n_sample)[0]
            else:
                model.eval(t, state, out=logits)
        if self.stop_reason != "length" or self.max_tokens == 0:
            tail = stream.flush()
            if self.stop_reason != "stop":  # the held-back text and the tail end the output
                self._buffer += tail
                out = self._buffer[len(self.text):]
                self.text = self._buffer
                if out:
                    yield out

    def _emit(self, piece, last):
        """Appends ``piece`` and returns the text no stop string can still claim."""
        old = len(self._buffer)
        self._buffer += piece
        limit = len(self._buffer)
        if self.stops:
            longest = max(len(s) for s in self.stops)
            start = max(0, old + 1 - longest)
            found = [at for at in (self._buffer.find(s, start) for s in self.stops) if at >= 0]
            if found:
                limit = min(found)
                self.stop_reason = "stop"
            elif not last:
                limit -= _holdback(self.stops, self._buffer)
        if limit <= len(self.text):
            return ""
        out = self._buffer[len(self.text):limit]
        self.text = self._buffer[:limit]
        return out


def _stop_strings(stop):
    if isinstance(stop, str):
        stop = (stop,)
    stops = []
    for s in stop:
        if not isinstance(s, str):
            raise TypeError(f"stop strings must be str, not {type(s).__name__}")
        if s:
            stops.append(s)
    return stops


def _holdback(stops, text):
    """Length of the longest end of ``text`` that begins one of ``stops`` (and may still become it)."""
    best = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:n]):
                best = n
                break
    return best

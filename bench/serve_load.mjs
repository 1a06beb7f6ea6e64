// The load test of `rwkv serve` (bench/serve_load.sh starts the servers and
// runs this): loopback only, bounded (a fixed number of requests per level),
// stops by itself.
//
//   node bench/serve_load.mjs streams PORT LEVELS REQUESTS MAX_TOKENS [ROUNDS]
//     ROUNDS times (default 1), the levels in turn, forward then backward
//     (so that other work on the machine weighs on every level alike);
//     for each concurrency level (e.g. "1,8,32,64"): LEVEL clients, each
//     sending REQUESTS streamed completions of MAX_TOKENS tokens one after the
//     other (distinct prompts, temperature 1, ignore_eos-free: a byte model
//     rarely ends early; the token counts come from the usage chunks);
//     prints one JSON line per level and round: p50/p99 time to first token,
//     generated tokens per second over the level's wall time (prompts
//     included), and the decode rate: the median over the requests of one
//     stream's tokens per second after its first token, times the number
//     of streams (what all streams together decode while they decode).
//   node bench/serve_load.mjs conversation PORT TURNS MAX_TOKENS
//     one chat conversation of TURNS turns about a long text (a system
//     message of about 3000 bytes, then short questions; each turn's
//     messages are the previous ones plus the reply plus a new question);
//     prints the time to first token of every turn as one JSON line.
const [mode, port, ...rest] = process.argv.slice(2);
const base = `http://127.0.0.1:${port}/v1`;

async function stream(path, body) {
  const t0 = performance.now();
  const res = await fetch(base + path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
  });
  if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
  const dec = new TextDecoder();
  let buf = '', ttft = null, text = '', usage = null;
  for await (const part of res.body) {
    buf += dec.decode(part, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
      const chunk = JSON.parse(ev.slice(6));
      if (chunk.usage) usage = chunk.usage;
      const c = chunk.choices[0];
      const piece = c ? (c.text ?? c.delta?.content ?? '') : '';
      if (piece && ttft === null) ttft = (performance.now() - t0) / 1000;
      text += piece;
    }
  }
  const end = (performance.now() - t0) / 1000;
  return { ttft: ttft ?? end, decode_s: end - (ttft ?? end), text, usage };
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

async function streams(levels, requests, maxTokens, rounds) {
  const order = levels.split(',').map(Number);
  await stream('/completions', { prompt: 'warm-up', max_tokens: 2 }); /* first-call costs stay out of the levels */
  for (let round = 1; round <= rounds; round++, order.reverse()) for (const level of order) {
    const ttfts = [], rates = [];
    let tokens = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: level }, async (_, c) => {
      for (let r = 0; r < requests; r++) {
        const res = await stream('/completions', {
          prompt: `Client ${c}, request ${r}: the story begins`, max_tokens: maxTokens, temperature: 1, seed: c * 1000 + r,
        });
        ttfts.push(res.ttft);
        tokens += res.usage.completion_tokens;
        if (res.decode_s > 0) rates.push((res.usage.completion_tokens - 1) / res.decode_s);
      }
    }));
    const wall = (performance.now() - t0) / 1000;
    console.log(JSON.stringify({ streams: level, round, requests: level * requests, tokens, wall_s: +wall.toFixed(3),
      ttft_p50_s: +pct(ttfts, 50).toFixed(4), ttft_p99_s: +pct(ttfts, 99).toFixed(4),
      tokens_per_s: +(tokens / wall).toFixed(1), decode_tokens_per_s: +(level * pct(rates, 50)).toFixed(1) }));
  }
}

async function conversation(turns, maxTokens) {
  const text = 'The river rises in the hills, runs through the old town and meets the sea at the harbour. '.repeat(32);
  const messages = [{ role: 'system', content: `Answer questions about this text. ${text}` }];
  const ttfts = [];
  for (let t = 0; t < turns; t++) {
    messages.push({ role: 'user', content: `Question ${t + 1}: what does the text say about the river and the town?` });
    const res = await stream('/chat/completions', { messages, max_tokens: maxTokens, temperature: 1, seed: t });
    ttfts.push(+res.ttft.toFixed(4));
    messages.push({ role: 'assistant', content: res.text });
  }
  console.log(JSON.stringify({ turns, ttft_s: ttfts }));
}

if (mode === 'streams') await streams(rest[0], Number(rest[1]), Number(rest[2]), Number(rest[3] ?? 1));
else if (mode === 'conversation') await conversation(Number(rest[0]), Number(rest[1]));
else {
  console.error('usage: node bench/serve_load.mjs streams PORT LEVELS REQUESTS MAX_TOKENS [ROUNDS] | conversation PORT TURNS MAX_TOKENS');
  process.exit(2);
}

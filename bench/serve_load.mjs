// The load test of `rwkv serve` (bench/serve_load.sh starts the servers and
// runs this): loopback only, bounded (a fixed number of requests per level),
// stops by itself.
//
//   node bench/serve_load.mjs streams PORT LEVELS REQUESTS MAX_TOKENS
//     for each concurrency level (e.g. "1,8,32,64"): LEVEL clients, each
//     sending REQUESTS streamed completions of MAX_TOKENS tokens one after the
//     other (distinct prompts, temperature 1, ignore_eos-free: a byte model
//     rarely ends early; the token counts come from the usage chunks);
//     prints one JSON line per level: p50/p99 time to first token, aggregate
//     generated tokens per second over the level's wall time.
//   node bench/serve_load.mjs conversation PORT TURNS MAX_TOKENS
//     one chat conversation of TURNS turns (each turn's messages are the
//     previous ones plus the reply plus a new user message); prints the time
//     to first token of every turn as one JSON line.
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
  return { ttft: ttft ?? (performance.now() - t0) / 1000, text, usage };
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

async function streams(levels, requests, maxTokens) {
  for (const level of levels.split(',').map(Number)) {
    const ttfts = [];
    let tokens = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: level }, async (_, c) => {
      for (let r = 0; r < requests; r++) {
        const res = await stream('/completions', {
          prompt: `Client ${c}, request ${r}: the story begins`, max_tokens: maxTokens, temperature: 1, seed: c * 1000 + r,
        });
        ttfts.push(res.ttft);
        tokens += res.usage.completion_tokens;
      }
    }));
    const wall = (performance.now() - t0) / 1000;
    console.log(JSON.stringify({ streams: level, requests: level * requests, tokens, wall_s: +wall.toFixed(3),
      ttft_p50_s: +pct(ttfts, 50).toFixed(4), ttft_p99_s: +pct(ttfts, 99).toFixed(4),
      tokens_per_s: +(tokens / wall).toFixed(1) }));
  }
}

async function conversation(turns, maxTokens) {
  const messages = [{ role: 'system', content: 'You are a helpful assistant who answers at length.' }];
  const ttfts = [];
  for (let t = 0; t < turns; t++) {
    messages.push({ role: 'user', content: `Question ${t + 1}: tell me more about the topic, in many words. `.repeat(8) });
    const res = await stream('/chat/completions', { messages, max_tokens: maxTokens, temperature: 1, seed: t });
    ttfts.push(+res.ttft.toFixed(4));
    messages.push({ role: 'assistant', content: res.text });
  }
  console.log(JSON.stringify({ turns, ttft_s: ttfts }));
}

if (mode === 'streams') await streams(rest[0], Number(rest[1]), Number(rest[2]));
else if (mode === 'conversation') await conversation(Number(rest[0]), Number(rest[1]));
else {
  console.error('usage: node bench/serve_load.mjs streams PORT LEVELS REQUESTS MAX_TOKENS | conversation PORT TURNS MAX_TOKENS');
  process.exit(2);
}

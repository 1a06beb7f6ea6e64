// The official `openai` client (pinned in package.json / package-lock.json)
// against a running `rwkv serve`: models, completions and chat completions,
// whole and streamed, usage counts, and the client's own error classes for a
// wrong key and a bad field. Prints PASS/FAIL lines (tests/cli/openai.sh runs it).
//   node client.mjs PORT KEY
import OpenAI from 'openai';

const [port, key] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: key, maxRetries: 0, timeout: 60000 });
let failed = 0;

async function check(name, fn) {
  try {
    const why = await fn();
    if (why) {
      failed = 1;
      console.log(`FAIL openai client: ${name}: ${why}`);
    } else {
      console.log(`PASS openai client: ${name}`);
    }
  } catch (e) {
    failed = 1;
    console.log(`FAIL openai client: ${name}: ${e.constructor.name}: ${e.message}`);
  }
}

const prompt = { model: 'any', prompt: 'Hello there', max_tokens: 8, temperature: 0 };
const chat = { model: 'any', messages: [{ role: 'user', content: 'Hi!' }], max_tokens: 6, seed: 7 };

await check('models.list', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  return ids.length === 1 ? '' : `models ${JSON.stringify(ids)}`;
});

let whole = '';
await check('completions.create', async () => {
  const r = await client.completions.create(prompt);
  whole = r.choices[0].text;
  if (r.usage.prompt_tokens !== 11 || r.usage.completion_tokens !== 8) return `usage ${JSON.stringify(r.usage)}`;
  return r.choices[0].finish_reason === 'length' ? '' : `finish_reason ${r.choices[0].finish_reason}`;
});

await check('completions.create stream', async () => {
  const stream = await client.completions.create({ ...prompt, stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
  return text === whole ? '' : `${JSON.stringify(text)} vs ${JSON.stringify(whole)}`;
});

let reply = '';
await check('chat.completions.create', async () => {
  const r = await client.chat.completions.create(chat);
  reply = r.choices[0].message.content;
  return r.choices[0].message.role === 'assistant' && r.usage.total_tokens === r.usage.prompt_tokens + r.usage.completion_tokens
    ? '' : JSON.stringify(r);
});

await check('chat.completions.create stream with usage', async () => {
  const stream = await client.chat.completions.create({ ...chat, stream: true, stream_options: { include_usage: true } });
  let text = '', usage = null, finish = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    const c = chunk.choices[0];
    if (c) {
      text += c.delta.content ?? '';
      finish = c.finish_reason ?? finish;
    }
  }
  if (!usage || !finish) return `usage ${JSON.stringify(usage)}, finish_reason ${finish}`;
  return text === reply ? '' : `${JSON.stringify(text)} vs ${JSON.stringify(reply)}`;
});

await check('a wrong key is an AuthenticationError', async () => {
  const bad = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'wrong', maxRetries: 0 });
  try {
    await bad.completions.create(prompt);
  } catch (e) {
    return e instanceof OpenAI.AuthenticationError && e.status === 401 ? '' : `${e.constructor.name} ${e.status}`;
  }
  return 'no error';
});

await check('a bad field is a BadRequestError naming it', async () => {
  try {
    await client.completions.create({ ...prompt, temperature: 9 });
  } catch (e) {
    return e instanceof OpenAI.BadRequestError && e.param === 'temperature' ? '' : `${e.constructor.name} ${e.param}`;
  }
  return 'no error';
});

process.exit(failed);

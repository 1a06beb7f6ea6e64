// Drives the chat page of `rwkv serve` in a headless chromium through the
// DevTools protocol (no library: node's WebSocket): loads the page, types a
// message, sends it, and waits until the streamed reply is complete; then a
// second message, whose reply must come from the same conversation. Prints
// PASS/FAIL lines (tests/cli/chat_page.sh starts the browser and the server).
//   node --experimental-websocket chat_page.mjs DEVTOOLS_PORT PAGE_URL [SCREENSHOT.png]
import { writeFileSync } from 'node:fs';

const [devPort, pageUrl, shot] = process.argv.slice(2);
const fail = (why) => {
  console.log(`FAIL chat page: ${why}`);
  process.exit(1);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let target = null;
for (let i = 0; i < 100 && !target; i++) {
  const list = await (await fetch(`http://127.0.0.1:${devPort}/json/list`)).json().catch(() => []);
  target = list.find((t) => t.type === 'page' && t.url.startsWith(pageUrl));
  if (!target) await sleep(100);
}
if (!target) fail(`no page at ${pageUrl} in the browser`);

const ws = new WebSocket(target.webSocketDebuggerUrl);
await new Promise((ok, bad) => { ws.onopen = ok; ws.onerror = () => bad(new Error('cannot connect to the page')); });
let next = 1;
const waiting = new Map();
ws.onmessage = (m) => {
  const msg = JSON.parse(m.data);
  if (msg.id && waiting.has(msg.id)) {
    waiting.get(msg.id)(msg);
    waiting.delete(msg.id);
  }
};
const call = (method, params = {}) => new Promise((ok) => {
  const id = next++;
  waiting.set(id, ok);
  ws.send(JSON.stringify({ id, method, params }));
});
const evaluate = async (expression) => (await call('Runtime.evaluate', { expression, returnByValue: true })).result?.result?.value;
async function until(expression, seconds, what) {
  for (let i = 0; i < seconds * 10; i++) {
    const v = await evaluate(expression);
    if (v) return v;
    await sleep(100);
  }
  fail(`timed out waiting for ${what}`);
}

await until(`document.readyState === 'complete' && document.getElementById('model').textContent.length > 0`, 20,
  'the page and its model name');
console.log('PASS chat page: loads and shows the model name');

const replies = [];
for (const [n, text] of [[1, 'Hello there!'], [2, 'And a second question?']]) {
  await evaluate(`document.getElementById('input').value = ${JSON.stringify(text)};
                  document.getElementById('form').requestSubmit(); true`);
  const got = JSON.parse(await until(`(() => {
      const a = document.querySelectorAll('.msg.assistant, .msg.error');
      const d = a[a.length - 1];
      return a.length === ${n} && d.dataset.done === '1' ? JSON.stringify({cls: d.className, text: d.textContent}) : '';
    })()`, 60, `reply ${n}`));
  if (got.cls !== 'msg assistant') fail(`reply ${n} is an error: ${got.text}`);
  replies.push(got.text);
}
const users = await evaluate(`document.querySelectorAll('.msg.user').length`);
if (users !== 2 || replies.some((r) => r.length === 0)) fail(`${users} user messages, replies ${JSON.stringify(replies)}`);
console.log('PASS chat page: two messages sent, two streamed replies shown');

if (shot) {
  const png = await call('Page.captureScreenshot', { format: 'png' });
  writeFileSync(shot, Buffer.from(png.result.data, 'base64'));
}
ws.close();
process.exit(0);

// llama.cpp's speed on a GGUF model, through node-llama-cpp's prebuilt CPU
// library (bench/gguf.sh installs it; never committed):
//   node llamacpp_bench.mjs MODEL.gguf THREADS DECODE_TOKENS PREFILL_TOKENS N_VOCAB
// Prints one JSON line: the median ms per decoded token (one token per call,
// after a warm-up) and the median prefill tokens/s of three runs from an
// empty context.
import {getLlama} from "node-llama-cpp";
import {performance} from "node:perf_hooks";

const [modelPath, threadsArg, decodeArg, prefillArg, vocabArg] = process.argv.slice(2);
const threads = Number(threadsArg), nDecode = Number(decodeArg), nPrefill = Number(prefillArg);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath, useMmap: true});
const context = await model.createContext({contextSize: Math.max(1024, nPrefill + nDecode + 16),
                                           batchSize: Math.max(nPrefill, 1), threads});
const sequence = context.getSequence();
const nVocab = Number(vocabArg);
const token = (i) => 1 + ((i * 7919) % (Math.min(nVocab, 60000) - 1)); /* ids the model has */
const median = (v) => v.slice().sort((a, b) => a - b)[Math.floor(v.length / 2)];

const decodeMs = [];
for (let i = 0; i < nDecode + 4; i++) {
    const t0 = performance.now();
    await sequence.evaluateWithoutGeneratingNewTokens([token(i)]);
    if (i >= 4) decodeMs.push(performance.now() - t0); /* the first calls warm up */
}
const prefillTps = [];
for (let r = 0; r < 3 && nPrefill > 0; r++) {
    await sequence.clearHistory();
    const prompt = Array.from({length: nPrefill}, (_, i) => token(i + 1000 * r));
    const t0 = performance.now();
    await sequence.evaluateWithoutGeneratingNewTokens(prompt);
    prefillTps.push(nPrefill / ((performance.now() - t0) / 1000));
}
console.log(JSON.stringify({engine: "llama.cpp", threads, decode_ms_per_token: median(decodeMs),
                            prefill_tokens_per_s: nPrefill > 0 ? median(prefillTps) : null}));
await context.dispose();
await model.dispose();

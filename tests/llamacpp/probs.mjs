// Next-token probabilities from llama.cpp (through node-llama-cpp's prebuilt
// library) for a GGUF model fed the given tokens one after the other from an
// empty context: writes float32 [T][n_vocab], position-major, to OUT.
//   node probs.mjs MODEL.gguf TOKEN,TOKEN,... N_VOCAB OUT
// Sampling options that keep every token (temperature 1, no top-k/top-p/min-p
// cut) make each probability softmax(logits) of that position.
import {getLlama} from "node-llama-cpp";
import {writeFileSync} from "node:fs";

const [modelPath, tokensCsv, nVocabArg, outPath] = process.argv.slice(2);
const nVocab = Number(nVocabArg);
const tokens = tokensCsv.split(",").map(Number);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath});
const context = await model.createContext({contextSize: Math.max(256, tokens.length + 1), threads: 1});
const sequence = context.getSequence();
const keepAll = {temperature: 1, topK: 0, topP: 1, minP: 0};
const result = await sequence.controlledEvaluate(
    tokens.map((t) => [t, {generateNext: {probabilities: true, options: keepAll}}]));
const out = new Float32Array(tokens.length * nVocab);
result.forEach((r, i) => {
    for (const [token, p] of r.next.probabilities) out[i * nVocab + token] = p;
});
writeFileSync(outPath, Buffer.from(out.buffer));
await context.dispose();
await model.dispose();

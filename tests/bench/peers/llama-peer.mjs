#!/usr/bin/env node
// tests/bench/peers/llama-peer.mjs — one peer run for `bagel bench --peer-cmd`: llama.cpp
// (prebuilt, from node-llama-cpp) on a GGUF written by gguf_export.py, with the bench's own
// workload: a prompt of N tokens with the same ids as bagel bench's llm stage, prefilled in
// one batch, then M greedy decode steps.  Prints one JSON object:
//   {"name", "prefill_tok_s", "decode_tok_s", "settings"}
// usage: node tests/bench/peers/llama-peer.mjs MODEL.gguf [PROMPT_TOKENS] [DECODE_TOKENS] [THREADS]
import {getLlama, LlamaLogLevel} from "node-llama-cpp";
import {readFileSync} from "node:fs";

const [modelPath, p = "512", d = "64", t = "2"] = process.argv.slice(2);
if (!modelPath) {
  console.error("usage: llama-peer.mjs MODEL.gguf [PROMPT_TOKENS] [DECODE_TOKENS] [THREADS]");
  process.exit(2);
}
const P = Number(p), D = Number(d), T = Number(t);
const version = JSON.parse(readFileSync(
  new URL("./node_modules/node-llama-cpp/package.json", import.meta.url))).version;

const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath, gpuLayers: 0});
const context = await model.createContext({contextSize: P + D + 16, batchSize: P, threads: T});
const seq = context.getSequence();
// the prompt bagel bench prefills: ids 1000 + (i·7919 mod 100000)
const prompt = Array.from({length: P}, (_, i) => 1000 + ((i * 7919) % 100000));
let t0 = performance.now();
await seq.evaluateWithoutGeneratingNewTokens(prompt);
const prefill = P / ((performance.now() - t0) / 1e3);
let n = 0;
t0 = performance.now();
for await (const tok of seq.evaluate([151644], {temperature: 0})) {
  if (++n >= D) break;
}
const decode = n / ((performance.now() - t0) / 1e3);
console.log(JSON.stringify({
  name: `llama.cpp (node-llama-cpp ${version}, prebuilt linux-x64 CPU)`,
  prefill_tok_s: prefill,
  decode_tok_s: decode,
  settings: {prompt_tokens: P, decode_tokens: n, threads: T, model: modelPath},
}));
await context.dispose();
await model.dispose();
await llama.dispose();

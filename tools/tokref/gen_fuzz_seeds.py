#!/usr/bin/env python3
"""tools/tokref/gen_fuzz_seeds.py — seed inputs for the tokenizer fuzz targets.

    python3 tools/tokref/gen_fuzz_seeds.py   (from the repository root)

tests/fuzz/corpus/tokenizer/: texts (prompts, special tokens, NUL, invalid UTF-8, combining
marks, long runs).  tests/fuzz/corpus/tokenizer_load/: tiny tokenizer files in the layout
fuzz_tokenizer_load.c reads (parts separated by the line "@@").  Crashes found later are added
next to these by hand, never regenerated."""
import json
import os

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
TEXT = os.path.join(ROOT, "tests/fuzz/corpus/tokenizer")
LOAD = os.path.join(ROOT, "tests/fuzz/corpus/tokenizer_load")


def byte_chars():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def write(d, name, data):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))


texts = {
    "prompt": "What is in this image? Describe it briefly.",
    "segment": "<|im_start|>Make the yellow circle green.<|im_end|>",
    "think": "You should first think about the planning process in the mind and then generate the image. \n"
             "The planning process is enclosed within <think> </think> tags, i.e. <think> planning process here </think> image here",
    "specials": "<|im_start<|im_end|><<|vision_start|>|><|image_pad|><tool_call>x</tool_call><|endoftext|>",
    "mixed": "Hello wörld! 你好，世界 Съешь 🇯🇵👨‍👩‍👧 it's WE'LL 12345678901234567890 \t\n\r\n  \u3000\u0085\u180e\ufeff",
    "nfc": "e\u0301 A\u030a \u212b \u1100\u1161\u11a8 a\u0323\u0307 \u0958 \u30ab\u3099",
    "code": "int main(void) {\n\treturn 0; // ok\n}\n    x += 1;",
    "long_word": "supercalifragilisticexpialidocious" * 4 + "啊" * 90,
    "empty": "",
    "spaces": "     \n\n\n\t\t",
}
for name, t in texts.items():
    write(TEXT, name + ".txt", t)
write(TEXT, "nul.bin", b"a\x00b\x00\x00 <|im_end|>\x00")
write(TEXT, "invalid.bin", b"ok \xe4\xb8 \xed\xa0\x80 \xf4\x90\x80\x80 \xc0\xaf \xff")
write(TEXT, "ids.bin", b"\x2c\x50\x02\x00" + b"\xff\xff\xff\xff" + b"\xe4\x00\x00\x00" + b"\x00\x00\x00\x80")

bc = byte_chars()
vocab = {bc[b]: b for b in range(256)}
vocab.update({"ab": 256, "abc": 257, "\u0120a": 258})
merges = "#version: 0.2\na b\nab c\n\u0120 a\n"
config = {"eos_token": "<|im_end|>", "pad_token": None, "unk_token": None,
          "added_tokens_decoder": {str(300 + i): {"content": c, "lstrip": False, "rstrip": False,
                                                  "single_word": False, "special": True, "normalized": False}
                                   for i, c in enumerate(["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>"])},
          "additional_special_tokens": ["<|im_start|>", "<|vision_start|>", "<|vision_end|>"]}
config["added_tokens_decoder"]["310"] = {"content": "<x>", "lstrip": True, "rstrip": True, "single_word": True}
V, C = json.dumps(vocab, ensure_ascii=False), json.dumps(config)
write(LOAD, "slow.txt", V + "@@\n" + merges + "@@\n" + C)
tj = {"model": {"type": "BPE", "vocab": vocab, "merges": ["a b", ["ab", "c"], "\u0120 a"]},
      "added_tokens": [{"id": int(k), **v} for k, v in config["added_tokens_decoder"].items()]}
write(LOAD, "fast.txt", json.dumps(tj, ensure_ascii=False))
write(LOAD, "fast_config.txt", json.dumps(tj, ensure_ascii=False) + "@@\n" + C)
write(LOAD, "bad_merge.txt", V + "@@\n#version: 0.2\na b c\n@@\n" + C)
write(LOAD, "bad_json.txt", V[:-40] + "@@\n" + merges + "@@\n" + C)
write(LOAD, "dup_id.txt", V[:-1] + ', "zz": 65}@@\n' + merges + "@@\n" + C)

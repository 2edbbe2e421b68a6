#!/usr/bin/env python3
"""tools/tokref/extract_golden.py — the tokenizer facts of the golden runs, for the tests.

    python3 tools/tokref/extract_golden.py ../shared/golden/tiny > tests/data/tokenizer/golden_tiny.json

From each mode of the official runs (../shared/golden/tiny/<mode>.json + .safetensors): the
prompt and its prompt_token_ids; every text segment appended to a context (the text from the
prepare_prompts.in event, its ids with bos/eos from prepare_prompts.out.packed_text_ids); the
generated ids (generate_text.out.out, leading bos included) and output_text.  Also the two
think system prompts: the first segment of t2i_think (generation) and und_think (understanding).
"""
import json
import os
import struct
import sys

MODES = ["und", "t2i", "edit", "und_think", "t2i_think", "edit_think"]


def read_tensor(path, key):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        meta = header[key]
        a, b = meta["data_offsets"]
        f.seek(8 + n + a)
        raw = f.read(b - a)
    fmt = {"I64": "q", "I32": "i"}[meta["dtype"]]
    return list(struct.unpack("<%d%s" % (len(raw) // struct.calcsize(fmt), fmt), raw))


def main(golden):
    out = {"about": "Extracted from ../shared/golden/tiny by tools/tokref/extract_golden.py; do not edit.",
           "modes": {}, "think_prompts": {}}
    for mode in MODES:
        j = json.load(open(os.path.join(golden, mode + ".json")))
        st = os.path.join(golden, mode + ".safetensors")
        segments, pending = [], None
        generated = None
        for ev in j["events"]:
            if ev["event"] == "prepare_prompts.in":
                prompts = ev["meta"]["prompts"]
                assert len(prompts) == 1
                pending = prompts[0]
            elif ev["event"] == "prepare_prompts.out":
                ids = read_tensor(st, ev["tensors"]["packed_text_ids"][0])
                segments.append({"text": pending, "ids": ids})
                pending = None
            elif ev["event"] == "generate_text.out":
                generated = read_tensor(st, ev["tensors"]["out"][0])
        out["modes"][mode] = {
            "prompt": j["prompt"], "prompt_token_ids": j["prompt_token_ids"],
            "new_token_ids": j["new_token_ids"], "segments": segments,
            "generated_ids": generated, "output_text": j["output_text"],
        }
    out["think_prompts"]["think_gen"] = out["modes"]["t2i_think"]["segments"][0]
    out["think_prompts"]["think_und"] = out["modes"]["und_think"]["segments"][0]
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/golden/tiny")

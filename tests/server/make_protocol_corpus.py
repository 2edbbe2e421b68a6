#!/usr/bin/env python3
"""tests/server/make_protocol_corpus.py — writes the seed corpus of the protocol fuzz
target (tests/fuzz/corpus/protocol/seed-*.bin): one valid frame of every message type,
frames back to back, and the malformed cases the parser must refuse.  Run it from the
source root after changing the protocol; crash reproducers found by fuzzing are added
to the same directory by hand (crash-*.bin) and never rewritten here."""
import json, os, struct

OUT = os.path.join(os.path.dirname(__file__), "..", "fuzz", "corpus", "protocol")
MAGIC = b"BGL\x01"

def frame(header, payload=b"", magic=MAGIC):
    h = json.dumps(header, separators=(",", ":")).encode() if not isinstance(header, bytes) else header
    return magic + struct.pack("<I", len(h)) + h + payload

def img(w, h, c):
    return {"width": w, "height": h, "channels": c}, bytes((i * 37) & 255 for i in range(w * h * c))

seeds = {}
seeds["hello"] = frame({"type": "hello", "version": 1, "software": "gimp-bagel 0.1.0", "pid": 42})
d, px = img(3, 2, 3)
seeds["job-edit"] = frame({"type": "job", "id": 1, "mode": "edit", "prompt": "make it blue",
    "params": {"think": True, "seed": -1, "steps": 25, "cfg_text": 4.0, "cfg_image": 2,
               "cfg_interval": [0, 1.0], "timestep_shift": 3.0, "renorm": "text_channel",
               "renorm_min": 0.0, "think_max_tokens": 100}, "image": d}, px)
seeds["job-generate"] = frame({"type": "job", "id": 2, "mode": "generate", "prompt": "a cat",
    "params": {"width": 512, "height": 384, "seed": 7, "renorm": "global"}})
d4, px4 = img(2, 2, 4)
seeds["job-describe"] = frame({"type": "job", "id": 3, "mode": "describe",
    "prompt": "What is in this image? \u00e9\u4e2d", "params": {"max_tokens": 64}, "image": d4}, px4)
seeds["accepted"] = frame({"type": "accepted", "id": 1, "position": 2})
seeds["progress"] = frame({"type": "progress", "id": 1, "stage": "denoise", "step": 3, "total": 49,
    "elapsed": 1.25})
d3, px3 = img(4, 1, 3)
seeds["result-image"] = frame({"type": "result", "id": 1, "seed": 1234567890123, "reasoning": "hmm",
    "timings": {"total": 2.5, "denoise": 2.0, "denoise_steps": 49}, "image": d3}, px3)
seeds["result-text"] = frame({"type": "result", "id": 3, "seed": 0, "text": "A cat.\nOn a mat."})
seeds["error"] = frame({"type": "error", "id": 1, "code": "model",
    "message": "no model; huggingface-cli download ByteDance-Seed/BAGEL-7B-MoT --local-dir /x"})
seeds["error-noid"] = frame({"type": "error", "code": "format", "message": "bad"})
seeds["cancel"] = frame({"type": "cancel", "id": 1})
seeds["status"] = frame({"type": "status"})
seeds["status-reply"] = frame({"type": "status", "pid": 9, "model_loaded": True, "model_loads": 1,
    "jobs_done": 4, "jobs_cancelled": 1, "queued": 0, "backend": "cpu"})
seeds["stream"] = seeds["hello"] + seeds["job-edit"] + seeds["cancel"] + seeds["status"]
# refused
seeds["bad-magic"] = frame({"type": "status"}, magic=b"GET ")
seeds["bad-version"] = frame({"type": "status"}, magic=b"BGL\x02")
seeds["truncated"] = seeds["job-edit"][:-3]
seeds["header-too-long"] = MAGIC + struct.pack("<I", (1 << 20) + 1) + b"{}"
seeds["deep"] = frame(b'{"type":"status","x":' + b"[" * 20 + b"]" * 20 + b"}")
seeds["huge-image"] = frame({"type": "job", "id": 1, "mode": "edit", "prompt": "x",
    "image": {"width": 16384, "height": 16384, "channels": 4}})
seeds["too-big-image"] = frame({"type": "job", "id": 1, "mode": "edit", "prompt": "x",
    "image": {"width": 16385, "height": 1, "channels": 3}})
seeds["unknown-key"] = frame({"type": "cancel", "id": 1, "extra": 0})
seeds["wrong-param"] = frame({"type": "job", "id": 1, "mode": "describe", "prompt": "x",
    "params": {"steps": 10}, "image": d}, px)
seeds["not-json"] = frame(b'{"type":"hello",')
seeds["nul-byte"] = frame(b'{"type":"status"\x00}')
seeds["lone-surrogate"] = frame(b'{"type":"error","code":"io","message":"\\ud800"}')
seeds["interval-reversed"] = frame({"type": "job", "id": 1, "mode": "generate", "prompt": "x",
    "params": {"cfg_interval": [0.9, 0.1]}})

os.makedirs(OUT, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(OUT, "seed-" + name + ".bin"), "wb") as f:
        f.write(data)
print("wrote", len(seeds), "seeds to", os.path.normpath(OUT))

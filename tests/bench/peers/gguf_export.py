#!/usr/bin/env python3
"""tests/bench/peers/gguf_export.py — write the understanding expert of a BAGEL checkpoint
as a Qwen2 GGUF, so that llama.cpp runs the same weights as our engine (the peer of
`bagel bench`, docs/performance.md).

    tests/bench/peers/gguf_export.py MODEL_DIR OUT.gguf

What goes in: token_embd, the und expert of every layer (q/k/v with biases, o, the
SwiGLU MLP, both norms), the final norm and lm_head, exactly as stored (bf16, bytes copied,
no conversion); 1-D tensors (norm weights, biases) as f32, as llama.cpp's own converter
writes them.  What is left out: the QK-norm (Qwen2 in llama.cpp has none; it costs ~0.1%
of a layer's FLOPs), the generation expert, the ViT and the VAE.  The vocabulary is the
model directory's Qwen2.5 tokenizer (vocab.json, merges.txt, tokenizer_config.json),
padded with [PAD<i>] entries to the embedding's row count, as llama.cpp's converter does.
Plain python3, no numpy: the weights are streamed from the mmapped safetensors file."""
import json
import mmap
import os
import struct
import sys

ALIGN = 32
GGUF_F32, GGUF_BF16 = 0, 30
T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY, T_UINT64 = 4, 5, 6, 7, 8, 9, 10
TOK_NORMAL, TOK_CONTROL, TOK_UNUSED = 1, 3, 5


def gstr(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, value):
    out = gstr(key) + struct.pack("<I", vtype)
    if vtype == T_STRING:
        return out + gstr(value)
    if vtype == T_ARRAY:
        etype, items = value
        out += struct.pack("<IQ", etype, len(items))
        if etype == T_STRING:
            return out + b"".join(gstr(x) for x in items)
        return out + struct.pack("<%d%s" % (len(items), {T_INT32: "i", T_UINT32: "I"}[etype]), *items)
    fmt = {T_UINT32: "<I", T_INT32: "<i", T_FLOAT32: "<f", T_BOOL: "<?", T_UINT64: "<Q"}[vtype]
    return out + struct.pack(fmt, value)


def read_safetensors(path):
    f = open(path, "rb")
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    return header, mm, 8 + n


def tokenizer(model_dir, n_vocab):
    vocab = json.load(open(os.path.join(model_dir, "vocab.json"), encoding="utf-8"))
    cfg = json.load(open(os.path.join(model_dir, "tokenizer_config.json"), encoding="utf-8"))
    added = {int(k): v["content"] for k, v in cfg.get("added_tokens_decoder", {}).items()}
    by_id = {i: t for t, i in vocab.items()}
    by_id.update(added)
    tokens, types = [], []
    for i in range(n_vocab):
        if i in by_id:
            tokens.append(by_id[i])
            types.append(TOK_CONTROL if i in added else TOK_NORMAL)
        else:
            tokens.append("[PAD%d]" % i)
            types.append(TOK_UNUSED)
    merges = []
    with open(os.path.join(model_dir, "merges.txt"), encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line and not line.startswith("#version"):
                merges.append(line)
    ids = {v: k for k, v in added.items()}
    return tokens, types, merges, ids


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    model_dir, out_path = sys.argv[1], sys.argv[2]
    llm = json.load(open(os.path.join(model_dir, "llm_config.json")))
    header, mm, data0 = read_safetensors(os.path.join(model_dir, "ema.safetensors"))
    L = llm["num_hidden_layers"]
    lm = "language_model.model."
    names = [("token_embd.weight", lm + "embed_tokens.weight")]
    per_layer = [("attn_norm.weight", "input_layernorm.weight"),
                 ("attn_q.weight", "self_attn.q_proj.weight"), ("attn_q.bias", "self_attn.q_proj.bias"),
                 ("attn_k.weight", "self_attn.k_proj.weight"), ("attn_k.bias", "self_attn.k_proj.bias"),
                 ("attn_v.weight", "self_attn.v_proj.weight"), ("attn_v.bias", "self_attn.v_proj.bias"),
                 ("attn_output.weight", "self_attn.o_proj.weight"),
                 ("ffn_norm.weight", "post_attention_layernorm.weight"),
                 ("ffn_gate.weight", "mlp.gate_proj.weight"), ("ffn_up.weight", "mlp.up_proj.weight"),
                 ("ffn_down.weight", "mlp.down_proj.weight")]
    for l in range(L):
        names += [("blk.%d.%s" % (l, g), "%slayers.%d.%s" % (lm, l, s)) for g, s in per_layer]
    names += [("output_norm.weight", lm + "norm.weight"), ("output.weight", "language_model.lm_head.weight")]

    tensors = []   # (gguf name, source info, gguf type, nbytes)
    for gname, sname in names:
        info = header.get(sname)
        if info is None:
            sys.exit("%s: tensor %s is missing" % (model_dir, sname))
        if info["dtype"] != "BF16":
            sys.exit("%s: %s is %s, expected BF16" % (model_dir, sname, info["dtype"]))
        one_d = len(info["shape"]) == 1
        n = 1
        for d in info["shape"]:
            n *= d
        tensors.append((gname, info, GGUF_F32 if one_d else GGUF_BF16, n * (4 if one_d else 2)))
    n_vocab = header[lm + "embed_tokens.weight"]["shape"][0]
    tokens, types, merges, special = tokenizer(model_dir, n_vocab)

    meta = [
        kv("general.architecture", T_STRING, "qwen2"),
        kv("general.name", T_STRING, "BAGEL und expert (%s)" % os.path.basename(os.path.abspath(model_dir))),
        kv("general.file_type", T_UINT32, 32),   # LLAMA_FTYPE_MOSTLY_BF16
        kv("general.alignment", T_UINT32, ALIGN),
        kv("qwen2.context_length", T_UINT32, 32768),
        kv("qwen2.embedding_length", T_UINT32, llm["hidden_size"]),
        kv("qwen2.feed_forward_length", T_UINT32, llm["intermediate_size"]),
        kv("qwen2.block_count", T_UINT32, L),
        kv("qwen2.attention.head_count", T_UINT32, llm["num_attention_heads"]),
        kv("qwen2.attention.head_count_kv", T_UINT32, llm["num_key_value_heads"]),
        kv("qwen2.rope.freq_base", T_FLOAT32, float(llm.get("rope_theta", 1e6))),
        kv("qwen2.attention.layer_norm_rms_epsilon", T_FLOAT32, float(llm.get("rms_norm_eps", 1e-6))),
        kv("tokenizer.ggml.model", T_STRING, "gpt2"),
        kv("tokenizer.ggml.pre", T_STRING, "qwen2"),
        kv("tokenizer.ggml.tokens", T_ARRAY, (T_STRING, tokens)),
        kv("tokenizer.ggml.token_type", T_ARRAY, (T_INT32, types)),
        kv("tokenizer.ggml.merges", T_ARRAY, (T_STRING, merges)),
        kv("tokenizer.ggml.eos_token_id", T_UINT32, special.get("<|im_end|>", 151645)),
        kv("tokenizer.ggml.padding_token_id", T_UINT32, special.get("<|endoftext|>", 151643)),
        kv("tokenizer.ggml.bos_token_id", T_UINT32, special.get("<|endoftext|>", 151643)),
        kv("tokenizer.ggml.add_bos_token", T_BOOL, False),
    ]
    infos, offset = [], 0
    for gname, info, gtype, nbytes in tensors:
        dims = list(reversed(info["shape"]))   # GGUF: innermost dimension first
        infos.append(gstr(gname) + struct.pack("<I", len(dims)) +
                     struct.pack("<%dQ" % len(dims), *dims) + struct.pack("<IQ", gtype, offset))
        offset += (nbytes + ALIGN - 1) // ALIGN * ALIGN
    with open(out_path, "wb") as out:
        out.write(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(meta)))
        for m in meta:
            out.write(m)
        for i in infos:
            out.write(i)
        out.write(b"\0" * (-out.tell() % ALIGN))
        for gname, info, gtype, nbytes in tensors:
            a, b = info["data_offsets"]
            if gtype == GGUF_F32:   # bf16 -> f32: the bits shifted up by 16
                src = mm[data0 + a:data0 + b]
                out.write(b"".join(b"\0\0" + src[i:i + 2] for i in range(0, len(src), 2)))
            else:                   # bf16 bytes as they are, 64 MiB at a time
                view = memoryview(mm)
                for c in range(data0 + a, data0 + b, 64 << 20):
                    out.write(view[c:min(c + (64 << 20), data0 + b)])
                view.release()
            out.write(b"\0" * (-nbytes % ALIGN))
    print("%s: %d tensors, %.2f GB, vocabulary %d (%d from the tokenizer)" %
          (out_path, len(tensors), os.path.getsize(out_path) / 1e9, n_vocab,
           sum(1 for t in types if t != TOK_UNUSED)))


if __name__ == "__main__":
    main()

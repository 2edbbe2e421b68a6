#!/usr/bin/python3
"""tools/gen_image_ref.py — reference data for tests/image (engine/image.c, imageio.c).

Run with Debian's python3-pil (Pillow 9.4, linked to the system libjpeg62-turbo and
libpng16, the libraries our engine links):

    /usr/bin/python3 tools/gen_image_ref.py tests/data/image

It writes:
  rule.txt          MaxLongEdgeMinShortEdgeResize for ~1500 (size, transform) pairs
  resize.txt        resize cases "seed w h c dw dh (raw OFFSET | sha256 HEX)"
  resize.bin        the raw expected outputs of the small cases
  png/*.png         PNGs of every colour type / bit depth, with and without tRNS
                    (written here by hand so that PIL's writer does not limit the set)
  jpeg/*.jpg        JPEGs written by PIL/libjpeg (4:2:0, 4:2:2, 4:4:4, progressive,
                    gray, CMYK, odd sizes) and damaged variants
  decode.txt        "FILE MODE W H" (PIL's mode after Image.open) or "FILE error"
  */*.rgb           pil_img2rgb(Image.open(FILE)) as raw RGB bytes

The expected values are Pillow's own: Image.resize(..., BICUBIC) on modes L / La / RGB /
RGBa, and the official pil_img2rgb (Bagel data/data_utils.py) reproduced below.  The
source images of the resize cases are made by pattern() below, which
tests/image/image_test_util.c reimplements exactly.

Pillow 9.4 and 11.1 (the golden run) agree on everything generated here: Resample.c,
Paste.c and the conversions used are unchanged between them (checked in their sources);
the one difference this code knows of, palette entries past the PLTE (9.4: a gray ramp,
11.1: black), is handled by computing that expectation for 11.1 here.  16-bit gray PNGs
open as mode "I" in 9.4 and "I;16" in 11.1; both convert to RGB by clipping at 255, and
decode.txt names the 11.1 mode.
"""
import hashlib
import os
import struct
import sys
import zlib

from PIL import Image

MASK = 0xFFFFFFFF


# --------------------------------------------------------------------------------------
# The official arithmetic (data/transforms.py, data/data_utils.py), restated.

def resize_rule(width, height, max_size, min_size, stride, max_pixels, img_num=1):
    def make_div(value):
        return max(stride, int(round(value / stride) * stride))

    def apply_scale(w, h, scale):
        return make_div(round(w * scale)), make_div(round(h * scale))

    scale = min(max_size / max(width, height), 1.0)
    scale = max(scale, min_size / min(width, height))
    nw, nh = apply_scale(width, height, scale)
    if nw * nh > max_pixels / img_num:
        scale = max_pixels / img_num / (nw * nh)
        nw, nh = apply_scale(nw, nh, scale)
    if max(nw, nh) > max_size:
        scale = max_size / max(nw, nh)
        nw, nh = apply_scale(nw, nh, scale)
    return nw, nh


def pil_img2rgb(image):
    if image.mode == "RGBA" or image.info.get("transparency", None) is not None:
        image = image.convert("RGBA")
        white = Image.new(mode="RGB", size=image.size, color=(255, 255, 255))
        white.paste(image, mask=image.split()[3])
        image = white
    else:
        image = image.convert("RGB")
    return image


# --------------------------------------------------------------------------------------
# Deterministic test images (mirrored in tests/image/image_test_util.c).

def pattern(seed, w, h, c):
    """kind = seed % 4: 0 noise, 1 gradient + noise with wraps, 2 0/255 blocks,
    3 0/255 one-pixel checkerboard with dark noise (worst overshoot)."""
    s = (seed * 0x9E3779B1 + 0x7F4A7C15) & MASK
    if s == 0:
        s = 1
    kind = seed % 4
    out = bytearray(w * h * c)
    i = 0
    for y in range(h):
        for x in range(w):
            for ch in range(c):
                s ^= (s << 13) & MASK
                s ^= s >> 17
                s ^= (s << 5) & MASK
                r = s >> 24
                if kind == 0:
                    v = r
                elif kind == 1:
                    v = ((x * 255) // max(w - 1, 1) + y * 3 + ch * 40 + (r >> 5)) & 255
                elif kind == 2:
                    v = 255 if ((x // 3 + y // 2 + ch) & 1) else 0
                else:
                    v = 255 if ((x + y + ch) & 1) else (r & 15)
                out[i] = v
                i += 1
    return bytes(out)


PIL_MODES = {1: "L", 2: "La", 3: "RGB", 4: "RGBa"}


def pil_from_interleaved(data, w, h, c):
    if c == 2:   # PIL has no raw "La" unpacker from 2-byte pixels: merge the bands
        l = Image.frombytes("L", (w, h), data[0::2])
        a = Image.frombytes("L", (w, h), data[1::2])
        return Image.merge("La", (l, a))
    return Image.frombytes(PIL_MODES[c], (w, h), data)


def pil_to_interleaved(im, c):
    if c == 2:
        l, a = im.split()
        out = bytearray(im.size[0] * im.size[1] * 2)
        out[0::2] = l.tobytes()
        out[1::2] = a.tobytes()
        return bytes(out)
    return im.tobytes()


# --------------------------------------------------------------------------------------
# rule.txt

TRANSFORMS = [  # (max, min, stride, max_pixels)
    (1024, 512, 16, 14 * 14 * 9 * 1024),   # VAE
    (980, 224, 14, 14 * 14 * 9 * 1024),    # ViT (inferencer, app)
    (980, 378, 14, 2007040),               # ViT (VLM eval)
    (128, 64, 16, 14 * 14 * 9 * 1024),     # golden run VAE
    (112, 56, 14, 14 * 14 * 9 * 1024),     # golden run ViT
]
SIDES = [1, 2, 3, 7, 13, 14, 15, 16, 17, 28, 31, 50, 56, 63, 64, 75, 80, 96, 99, 100, 111,
         112, 127, 128, 150, 223, 224, 225, 255, 256, 300, 333, 378, 480, 500, 511, 512, 513,
         640, 686, 688, 720, 768, 979, 980, 981, 1023, 1024, 1025, 1080, 1200, 1500, 1920,
         2048, 3000, 4000, 4096, 7000, 10000, 16384, 20000]
EXTREME = [(16, 120), (120, 16), (1, 20000), (20000, 1), (7, 1000), (1000, 7), (1, 1),
           (100, 75), (96, 80), (1920, 1080), (640, 480), (300, 300), (74, 512), (75, 512),
           (512, 74), (16, 110), (16, 111), (16, 112), (16, 113), (60, 420), (61, 420)]


def write_rule(out_dir):
    lines = []
    step3 = 0
    for t in TRANSFORMS:
        pairs = list(EXTREME)
        # a deterministic spread over the size grid (about 280 pairs per transform)
        n = len(SIDES)
        for i in range(n):
            for j in range(n):
                if (i * 7 + j * 3 + t[0]) % 13 == 0 or i == j:
                    pairs.append((SIDES[i], SIDES[j]))
        for w, h in pairs:
            ow, oh = resize_rule(w, h, *t)
            s1 = resize_rule(w, h, t[0], t[1], t[2], 1 << 62)
            if (ow, oh) != s1:
                step3 += 1
            lines.append("%d %d %d %d %d %d %d %d" % (w, h, *t, ow, oh))
    with open(os.path.join(out_dir, "rule.txt"), "w") as f:
        f.write("# w h max min stride max_pixels -> out_w out_h  (tools/gen_image_ref.py)\n")
        f.write("\n".join(lines) + "\n")
    print("rule.txt: %d cases, %d where the max_pixels step changes the result"
          % (len(lines), step3))


# --------------------------------------------------------------------------------------
# resize.txt / resize.bin

def resize_cases():
    cases = [  # (w, h, c, dw, dh)
        (1, 1, 3, 1, 1), (1, 1, 1, 5, 3), (1, 1, 4, 16, 16), (2, 1, 3, 1, 1),
        (3, 3, 2, 1, 1), (1, 7, 1, 1, 3), (7, 1, 3, 3, 1), (2, 2, 3, 3, 3),
        (5, 4, 3, 17, 13), (10, 10, 1, 32, 32), (3, 2, 4, 48, 32), (17, 9, 2, 64, 36),
        (100, 75, 3, 96, 80), (96, 80, 3, 98, 84), (64, 64, 3, 7, 9), (64, 64, 1, 63, 65),
        (1000, 20, 3, 13, 3), (20, 1000, 1, 3, 13), (997, 3, 4, 13, 3), (1000, 1, 1, 13, 1),
        (31, 17, 3, 31, 40), (31, 40, 3, 31, 17), (23, 11, 1, 50, 11), (50, 11, 4, 9, 11),
        (33, 47, 3, 21, 29), (129, 65, 2, 64, 32), (65, 129, 3, 32, 64), (40, 30, 3, 41, 29),
        (16, 120, 3, 128, 1024), (255, 3, 1, 256, 3), (3, 255, 1, 3, 256), (8, 8, 3, 80, 80),
        (300, 200, 3, 30, 20), (47, 33, 4, 47, 33), (11, 13, 3, 11, 13), (2, 3, 1, 1, 1),
        (640, 480, 3, 688, 512), (688, 512, 3, 686, 518), (1024, 768, 3, 980, 742),
        (2000, 1500, 3, 1024, 768), (513, 257, 4, 512, 256), (1920, 1080, 3, 1024, 576),
    ]
    # a sweep of small sizes, every channel count
    k = 0
    for w in (1, 2, 3, 5, 8, 13):
        for h in (1, 4, 7):
            for dw in (1, 3, 6, 21):
                dh = (h * 3 + dw) % 11 + 1
                cases.append((w, h, k % 4 + 1, dw, dh))
                k += 1
    return cases


def write_resize(out_dir):
    blob = bytearray()
    lines = []
    maxraw = 8192
    for seed, (w, h, c, dw, dh) in enumerate(resize_cases()):
        src = pattern(seed, w, h, c)
        im = pil_from_interleaved(src, w, h, c)
        res = im.resize((dw, dh), Image.BICUBIC)
        assert res.mode == im.mode and res.size == (dw, dh)
        out = pil_to_interleaved(res, c)
        if len(out) <= maxraw:
            lines.append("%d %d %d %d %d %d raw %d" % (seed, w, h, c, dw, dh, len(blob)))
            blob += out
        else:
            lines.append("%d %d %d %d %d %d sha256 %s"
                         % (seed, w, h, c, dw, dh, hashlib.sha256(out).hexdigest()))
    with open(os.path.join(out_dir, "resize.txt"), "w") as f:
        f.write("# seed w h channels dst_w dst_h (raw OFFSET-in-resize.bin | sha256 HEX)\n")
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(out_dir, "resize.bin"), "wb") as f:
        f.write(blob)
    print("resize: %d cases, %d raw bytes" % (len(lines), len(blob)))


# --------------------------------------------------------------------------------------
# PNG files, written by hand

def chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & MASK))


def pack_row(samples, bits):
    """samples: flat list of ints (all channels of one row)."""
    if bits == 8:
        return bytes(samples)
    if bits == 16:
        return b"".join(struct.pack(">H", v) for v in samples)
    out = bytearray()
    acc = nb = 0
    for v in samples:
        acc = (acc << bits) | v
        nb += bits
        if nb == 8:
            out.append(acc)
            acc = nb = 0
    if nb:
        out.append(acc << (8 - nb))
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]


def png_bytes(w, h, bits, ctype, px, plte=None, trns=None, interlace=False, pre_idat=(),
              truncate=None, bad_crc_in=None):
    """px[y][x] = tuple of channel samples."""
    raw = bytearray()
    if not interlace:
        for y in range(h):
            raw += b"\0" + pack_row([v for p in px[y] for v in p], bits)
    else:
        for x0, y0, dx, dy in ADAM7:
            for y in range(y0, h, dy):
                row = [v for x in range(x0, w, dx) for v in px[y][x]]
                if row:
                    raw += b"\0" + pack_row(row, bits)
    out = b"\x89PNG\r\n\x1a\n"
    out += chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bits, ctype, 0, 0, int(interlace)))
    for c in pre_idat:
        out += c
    if plte is not None:
        out += chunk(b"PLTE", bytes(v for rgb in plte for v in rgb))
    if trns is not None:
        t = chunk(b"tRNS", trns)
        if bad_crc_in == b"tRNS":
            t = t[:-1] + bytes([t[-1] ^ 1])
        out += t
    out += chunk(b"IDAT", zlib.compress(bytes(raw), 9))
    out += chunk(b"IEND", b"")
    if truncate:
        out = out[:truncate]
    return out


def grid(w, h, f):
    return [[f(x, y) for x in range(w)] for y in range(h)]


def png_cases():
    """(name, w, h, bits, ctype, px, kwargs)"""
    W, H = 7, 5
    cases = []
    for bits in (1, 2, 4, 8, 16):
        top = (1 << bits) - 1
        px = grid(W, H, lambda x, y: (((x * 5 + y * 3) * 37) % (top + 1),))
        cases.append(("gray%d" % bits, W, H, bits, 0, px, {}))
        key = 0 if bits < 8 else px[1][2][0]
        cases.append(("gray%d_trns%d" % (bits, key), W, H, bits, 0, px,
                      {"trns": struct.pack(">H", key)}))
    cases.append(("gray1_trns1", W, H, 1, 0, grid(W, H, lambda x, y: ((x + y) & 1,)), {
        "trns": struct.pack(">H", 1)}))
    cases.append(("gray2_trns3", W, H, 2, 0, grid(W, H, lambda x, y: ((x + y) & 3,)), {
        "trns": struct.pack(">H", 3)}))
    # 16-bit gray: small values (kept) and large ones (clipped to 255); a key whose low
    # byte is 0xff matches every clipped pixel
    px16 = grid(W, H, lambda x, y: ((x * 70 + y * 400) % 700,))
    cases.append(("gray16_small", W, H, 16, 0, px16, {}))
    cases.append(("gray16_trns1ff", W, H, 16, 0, px16, {"trns": struct.pack(">H", 0x1ff)}))
    cases.append(("gray16_trns_exact", W, H, 16, 0, px16,
                  {"trns": struct.pack(">H", px16[0][1][0])}))
    for bits in (8, 16):
        s = 257 if bits == 16 else 1
        pxa = grid(W, H, lambda x, y: ((x * 40 % 256) * s, ((y * 60 + x * 9) % 256) * s))
        cases.append(("ga%d" % bits, W, H, bits, 4, pxa, {}))
        pxc = grid(W, H, lambda x, y: (((x * 40) % 256) * s, ((y * 50) % 256) * s,
                                       ((x * y * 7) % 256) * s))
        cases.append(("rgb%d" % bits, W, H, bits, 2, pxc, {}))
        k = pxc[2][3]
        cases.append(("rgb%d_trns" % bits, W, H, bits, 2, pxc,
                      {"trns": struct.pack(">HHH", *k)}))
        pxr = grid(W, H, lambda x, y: (((x * 40) % 256) * s, ((y * 50) % 256) * s,
                                       ((x * y * 7) % 256) * s, ((x * 37 + y * 71) % 256) * s))
        cases.append(("rgba%d" % bits, W, H, bits, 6, pxr, {}))
    # 16-bit RGB with a key whose high bytes match some pixels but low bytes differ:
    # PIL compares the key's low bytes with the (high-byte) pixels
    pxq = grid(W, H, lambda x, y: ((x * 0x2300 + 0x11), (y * 0x3100 + 0x22), 0x4433))
    cases.append(("rgb16_trns_lowbyte", W, H, 16, 2, pxq, {"trns": struct.pack(">HHH", 0x0046,
                                                                                0x0062, 0x0044)}))
    for bits in (1, 2, 4, 8):
        n = 1 << bits
        plte = [((i * 67) % 256, (i * 131 + 7) % 256, (i * 29 + 200) % 256)
                for i in range(min(n, 256))]
        pxp = grid(W, H, lambda x, y: ((x * 3 + y * 5) % n,))
        cases.append(("pal%d" % bits, W, H, bits, 3, pxp, {"plte": plte}))
        cases.append(("pal%d_trns_simple" % bits, W, H, bits, 3, pxp,
                      {"plte": plte, "trns": b"\xff" * (1 % n) + b"\x00"}))
        alphas = bytes((i * 97) % 256 for i in range(max(1, min(n, 256) - 1)))
        cases.append(("pal%d_trns_alpha" % bits, W, H, bits, 3, pxp,
                      {"plte": plte, "trns": alphas}))
    plte = [((i * 67) % 256, (i * 131 + 7) % 256, (i * 29 + 200) % 256) for i in range(16)]
    pxp = grid(W, H, lambda x, y: ((x * 3 + y * 5) % 16,))
    # PIL's "simple" test is a regex whose $ also matches before a final newline
    cases.append(("pal8_trns_newline", W, H, 8, 3, pxp,
                  {"plte": plte, "trns": b"\xff\x00\xff\xff\x0a"}))
    cases.append(("pal8_trns_two_zeros", W, H, 8, 3, pxp,
                  {"plte": plte, "trns": b"\xff\x00\xff\x00"}))
    cases.append(("pal8_trns_all_ff", W, H, 8, 3, pxp, {"plte": plte, "trns": b"\xff\xff"}))
    # interlaced
    pxc = grid(13, 11, lambda x, y: ((x * 19) % 256, (y * 23) % 256, ((x + y) * 11) % 256))
    cases.append(("rgb8_adam7", 13, 11, 8, 2, pxc, {"interlace": True}))
    pxp = grid(13, 11, lambda x, y: ((x + 2 * y) % 4,))
    cases.append(("pal2_adam7_trns", 13, 11, 2, 3, pxp,
                  {"plte": [(10, 20, 30), (200, 100, 0), (0, 255, 0), (9, 9, 9)],
                   "trns": b"\x80\x00", "interlace": True}))
    pxa = grid(13, 11, lambda x, y: ((x * 3 + y * 17) % 65536 * 97 % 65536,
                                     (x * 5003 + y * 7919) % 65536))
    cases.append(("ga16_adam7", 13, 11, 16, 4, pxa, {"interlace": True}))
    cases.append(("gray8_1x1", 1, 1, 8, 0, [[(77,)]], {}))
    cases.append(("rgba8_1x1_clear", 1, 1, 8, 6, [[(10, 200, 30, 0)]], {}))
    # an unknown ancillary chunk before IDAT (skipped by both)
    cases.append(("rgb8_private_chunk", W, H, 8, 2,
                  grid(W, H, lambda x, y: (x * 30, y * 40, 99)),
                  {"pre_idat": [chunk(b"prIv", b"hello")]}))
    return cases


def palette_beyond_plte():
    """pixels index entries past a 2-entry PLTE: Pillow 11 shows them black (9.4: gray)."""
    px = grid(7, 5, lambda x, y: ((x + y) % 4,))
    plte = [(255, 0, 0), (0, 0, 255)]
    data = png_bytes(7, 5, 8, 3, px, plte=plte)
    rgb = bytearray()
    for row in px:
        for (i,) in row:
            rgb += bytes(plte[i]) if i < len(plte) else b"\0\0\0"
    return data, bytes(rgb)


def write_png_set(out_dir, manifest):
    d = os.path.join(out_dir, "png")
    os.makedirs(d, exist_ok=True)
    for name, w, h, bits, ctype, px, kw in png_cases():
        data = png_bytes(w, h, bits, ctype, px, **kw)
        decode_one(d, name + ".png", data, manifest)
    data, rgb = palette_beyond_plte()
    with open(os.path.join(d, "pal8_beyond_plte.png"), "wb") as f:
        f.write(data)
    with open(os.path.join(d, "pal8_beyond_plte.rgb"), "wb") as f:
        f.write(rgb)
    manifest.append("png/pal8_beyond_plte.png P 7 5   # Pillow 11 expectation, not 9.4's")
    # damaged files: both PIL and we must refuse them
    good = png_bytes(7, 5, 8, 2, grid(7, 5, lambda x, y: (x, y, 7)))
    bad = {
        "truncated_idat": good[:len(good) - 30],
        "truncated_header": good[:20],
        "bad_trns_crc": png_bytes(7, 5, 8, 0, grid(7, 5, lambda x, y: (x,)),
                                  trns=b"\x00\x03", bad_crc_in=b"tRNS"),
        "short_trns_rgb": png_bytes(7, 5, 8, 2, grid(7, 5, lambda x, y: (x, y, 7)),
                                    trns=b"\x00\x01"),
    }
    for name, data in bad.items():
        decode_one(d, name + ".png", data, manifest)


def decode_one(d, fname, data, manifest):
    path = os.path.join(d, fname)
    with open(path, "wb") as f:
        f.write(data)
    rel = os.path.basename(d) + "/" + fname
    try:
        im = Image.open(path)
        im.load()
        mode = im.mode
        rgb = pil_img2rgb(im).tobytes()
    except Exception as e:   # noqa: BLE001 - any failure of PIL is an expected "error"
        why = str(e).splitlines()[0].replace(path, fname)[:60]
        manifest.append("%s error   # PIL: %s" % (rel, why))
        return
    if mode == "I":          # Pillow 9.4's name for 16-bit gray; 11.1 says I;16
        mode = "I;16"
    base = os.path.splitext(path)[0]
    with open(base + ".rgb", "wb") as f:
        f.write(rgb)
    manifest.append("%s %s %d %d" % (rel, mode, im.size[0], im.size[1]))


# --------------------------------------------------------------------------------------
# JPEG files, written by PIL

def write_jpeg_set(out_dir, manifest):
    d = os.path.join(out_dir, "jpeg")
    os.makedirs(d, exist_ok=True)
    src = Image.frombytes("RGB", (37, 23), pattern(1, 37, 23, 3))
    variants = {
        "rgb420_q90.jpg": dict(quality=90),
        "rgb422_q75.jpg": dict(quality=75, subsampling=1),
        "rgb444_q95.jpg": dict(quality=95, subsampling=0),
        "rgb420_progressive.jpg": dict(quality=85, progressive=True),
        "rgb420_optimize.jpg": dict(quality=60, optimize=True),
    }
    for name, kw in variants.items():
        src.save(os.path.join(d, name), "JPEG", **kw)
    src.convert("L").save(os.path.join(d, "gray_q90.jpg"), "JPEG", quality=90)
    Image.frombytes("CMYK", (19, 13), pattern(5, 19, 13, 4)).save(
        os.path.join(d, "cmyk_q90.jpg"), "JPEG", quality=90)
    Image.frombytes("RGB", (1, 1), b"\x10\x80\xf0").save(os.path.join(d, "rgb_1x1.jpg"), "JPEG")
    Image.frombytes("RGB", (17, 9), pattern(2, 17, 9, 3)).save(
        os.path.join(d, "rgb_odd_17x9.jpg"), "JPEG", quality=80)
    written = sorted(list(variants) + ["gray_q90.jpg", "cmyk_q90.jpg", "rgb_1x1.jpg",
                                       "rgb_odd_17x9.jpg"])
    for name in written:
        with open(os.path.join(d, name), "rb") as f:
            decode_one(d, name, f.read(), manifest)
    with open(os.path.join(d, "rgb420_q90.jpg"), "rb") as f:
        good = f.read()
    with open(os.path.join(d, "rgb420_progressive.jpg"), "rb") as f:
        prog = f.read()
    with open(os.path.join(d, "rgb_1x1.jpg"), "rb") as f:
        tiny = bytearray(f.read())
    sof = tiny.find(b"\xff\xc0")
    tiny[sof + 5:sof + 9] = struct.pack(">HH", 48, 64)   # claims 64x48: PIL pads, no error
    damaged = {
        "claims_64x48.jpg": bytes(tiny),
        "truncated_half.jpg": good[: len(good) // 2],
        "truncated_progressive.jpg": prog[: len(prog) * 2 // 3],
        "no_eoi.jpg": good[:-2],
        "header_only.jpg": good[:200],
    }
    for name, data in damaged.items():
        decode_one(d, name, data, manifest)


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/data/image"
    os.makedirs(out_dir, exist_ok=True)
    for sub in ("png", "jpeg"):   # start from empty folders: the listing is the manifest
        if os.path.isdir(os.path.join(out_dir, sub)):
            for name in os.listdir(os.path.join(out_dir, sub)):
                os.remove(os.path.join(out_dir, sub, name))
    import PIL
    print("Pillow", PIL.__version__)
    write_rule(out_dir)
    write_resize(out_dir)
    manifest = []
    write_png_set(out_dir, manifest)
    write_jpeg_set(out_dir, manifest)
    with open(os.path.join(out_dir, "decode.txt"), "w") as f:
        f.write("# FILE PIL-MODE W H  (expected RGB in FILE with .rgb)  |  FILE error\n")
        f.write("\n".join(manifest) + "\n")
    print("decode.txt: %d files" % len(manifest))


if __name__ == "__main__":
    main()

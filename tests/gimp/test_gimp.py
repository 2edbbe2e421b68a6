# tests/gimp/test_gimp.py — gimp-bagel end to end inside GIMP 3, run by run-gimp-tests as
#   gimp-console-3.0 -i --batch-interpreter=python-fu-eval -b - --quit < test_gimp.py
# with bagel-engine-fake as the engine (tests/server/fake_engine.c): its edit returns
# (255 − source + seed) mod 256 per R, G, B channel at the size it is given, so the
# plug-in's plumbing (reading any image mode through babl, offsets, selections, the new
# layer, its parasite) can be checked pixel for pixel.  With BAGEL_GIMP_REAL=1 (a second
# session, when bagel-engine is built) only the real_* cases run: the installed
# bagel-engine on the tiny checkpoint, compared with the bagel CLI's output.
#
# Each case prints "ok - name", "not ok - name: why", "skip - …" or "todo - …"; the list
# goes to $BAGEL_TEST_OUT/results.json, which run-gimp-tests reads.

import json
import math
import os
import re
import socket
import struct
import subprocess
import time
import traceback

import gi
gi.require_version('Gimp', '3.0')
gi.require_version('Gegl', '0.4')
from gi.repository import Gegl, Gimp  # noqa: E402

OUT = os.environ['BAGEL_TEST_OUT']
RUNTIME = os.path.join(os.environ['XDG_RUNTIME_DIR'], 'gimp-bagel')
TRACE = os.environ.get('BAGEL_PLUGIN_TRACE', '')
ONLY = os.environ.get('BAGEL_GIMP_TESTS', '')
pdb = Gimp.get_pdb()
cases = []
results = []


class Skip(Exception):
    pass


class Todo(Exception):
    pass


def case(fn):
    cases.append(fn)
    return fn


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


# ---- helpers ---------------------------------------------------------------------------

def new_image(w, h, base=Gimp.ImageBaseType.RGB):
    img = Gimp.Image.new(w, h, base)
    return img


def add_layer(img, w, h, fill, offsets=(0, 0), name='src', alpha=True):
    """A layer whose R'G'B'A u8 pixels are fill(x, y) -> (r, g, b, a)."""
    base = img.get_base_type()
    types = {Gimp.ImageBaseType.RGB: (Gimp.ImageType.RGBA_IMAGE, Gimp.ImageType.RGB_IMAGE),
             Gimp.ImageBaseType.GRAY: (Gimp.ImageType.GRAYA_IMAGE, Gimp.ImageType.GRAY_IMAGE)}
    layer = Gimp.Layer.new(img, name, w, h, types[base][0 if alpha else 1], 100,
                           Gimp.LayerMode.NORMAL)
    img.insert_layer(layer, None, 0)
    layer.set_offsets(*offsets)
    data = bytearray(w * h * 4)
    for y in range(h):
        for x in range(w):
            data[(y * w + x) * 4:(y * w + x) * 4 + 4] = bytes(fill(x, y))
    buf = layer.get_buffer()
    buf.set(Gegl.Rectangle.new(0, 0, w, h), "R'G'B'A u8", bytes(data))
    buf.flush()
    layer.update(0, 0, w, h)
    return layer


def pixels(drawable, fmt="R'G'B'A u8"):
    w, h = drawable.get_width(), drawable.get_height()
    buf = drawable.get_buffer()
    return bytes(buf.get(Gegl.Rectangle.new(0, 0, w, h), 1.0, fmt, Gegl.AbyssPolicy.NONE))


def pattern(x, y):
    return ((x * 7 + y * 13) & 255, (x * 3 + y * 29 + 71) & 255, (x * 11 + y * 5 + 142) & 255, 255)


def run(name, img, drawables, **args):
    proc = pdb.lookup_procedure(name)
    check(proc is not None, name + ' is not registered')
    cfg = proc.create_config()
    cfg.set_property('run-mode', args.pop('run_mode', Gimp.RunMode.NONINTERACTIVE))
    cfg.set_property('image', img)
    cfg.set_core_object_array('drawables', drawables)
    for k, v in args.items():
        cfg.set_property(k.replace('_', '-'), v)
    res = proc.run(cfg)
    status = res.index(0)
    values = [res.index(i) for i in range(1, res.length())]
    return status, values


def run_ok(name, img, drawables, **args):
    status, values = run(name, img, drawables, **args)
    if status != Gimp.PDBStatusType.SUCCESS:
        raise AssertionError('%s returned %s: %s' % (name, status.value_nick,
                                                    values[0] if values else pdb.get_last_error()))
    return values


def settings(layer):
    p = layer.get_parasite('gimp-bagel-settings')
    check(p is not None, 'no gimp-bagel-settings parasite on ' + layer.get_name())
    data = bytes(p.get_data()).rstrip(b'\0')
    return json.loads(data.decode())


def fake_edit(src_rgba, seed):
    """What bagel-engine-fake's edit makes of R'G'B'A pixels (alpha kept by the plug-in)."""
    out = bytearray(src_rgba)
    for i in range(0, len(out), 4):
        for c in range(3):
            out[i + c] = (255 - src_rgba[i + c] + seed) & 255
    return bytes(out)


def first_diff(a, b, w, ch=4):
    for i in range(min(len(a), len(b))):
        if a[i] != b[i]:
            p = i // ch
            return 'first difference at (%d, %d) channel %d: %d != %d' % (p % w, p // w, i % ch, a[i], b[i])
    return 'lengths %d != %d' % (len(a), len(b))


def engine_pid():
    try:
        with open(os.path.join(RUNTIME, 'engine.pid')) as f:
            return int(f.read())
    except OSError:
        return None


def engine_status():
    """A status request in the wire protocol (engine/protocol.h), spoken from Python."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(os.path.join(RUNTIME, 'engine.sock'))

    def send(obj):
        h = json.dumps(obj).encode()
        s.sendall(b'BGL\x01' + struct.pack('<I', len(h)) + h)

    def readn(n):
        b = b''
        while len(b) < n:
            chunk = s.recv(n - len(b))
            check(chunk, 'engine closed the connection')
            b += chunk
        return b

    def recv():
        pre = readn(8)
        check(pre[:4] == b'BGL\x01', 'bad magic from the engine')
        return json.loads(readn(struct.unpack('<I', pre[4:])[0]))

    send({'type': 'hello', 'version': 1, 'software': 'test_gimp.py'})
    hello = recv()
    check(hello['type'] == 'hello', 'engine answered %r' % hello)
    send({'type': 'status'})
    st = recv()
    s.close()
    return st


def kill_later(pattern_, delay, sig=9):
    """Kill the process whose command line matches, after delay seconds (from a shell, so
    that the blocking PDB call in this process does not matter)."""
    # argv[0] only: other command lines (the driving shell's) mention these paths too
    script = ('sleep %s; for p in /proc/[0-9]*; do [ "${p#/proc/}" = $$ ] && continue; '
              'c=$(tr "\\0" "\\n" < $p/cmdline 2>/dev/null | head -n 1); '
              'case "$c" in *%s) kill -%d ${p#/proc/};; esac; done' % (delay, pattern_, sig))
    return subprocess.Popen(['sh', '-c', script])


def layer_index(img, layer):
    return [l.get_id() for l in img.get_layers()].index(layer.get_id())


# ---- registration ------------------------------------------------------------------------

EXPECTED_ARGS = {
    'plug-in-bagel-edit': ['instruction', 'think', 'seed', 'steps', 'cfg-text', 'cfg-image',
                           'cfg-interval-start', 'timestep-shift', 'renorm-type', 'renorm-min',
                           'use-selection'],
    'plug-in-bagel-generate': ['prompt', 'think', 'seed', 'width', 'height', 'steps', 'cfg-text',
                               'cfg-interval-start', 'timestep-shift', 'renorm-type', 'renorm-min'],
    'plug-in-bagel-describe': ['question', 'think', 'seed', 'max-tokens'],
    'plug-in-bagel-style': ['preset', 'extra-instruction', 'think', 'seed', 'steps', 'cfg-text',
                            'cfg-image', 'cfg-interval-start', 'timestep-shift', 'renorm-type',
                            'renorm-min', 'use-selection'],
}
EXPECTED_ARGS['plug-in-bagel-multiview'] = EXPECTED_ARGS['plug-in-bagel-style']
EXPECTED_RETURNS = {
    'plug-in-bagel-edit': ['layer', 'reasoning'], 'plug-in-bagel-generate': ['layer', 'reasoning'],
    'plug-in-bagel-describe': ['text', 'reasoning'], 'plug-in-bagel-style': ['layer', 'reasoning'],
    'plug-in-bagel-multiview': ['layer', 'reasoning'],
}


@case
def registration():
    for name, args in EXPECTED_ARGS.items():
        proc = pdb.lookup_procedure(name)
        check(proc is not None, name + ' is not registered')
        got = [p.get_name() for p in proc.get_arguments()][3:]  # run-mode, image, drawables
        check(got == args, '%s arguments: %s' % (name, got))
        rets = [p.get_name() for p in proc.get_return_values()]
        check(rets == EXPECTED_RETURNS[name], '%s returns %s' % (name, rets))
        check('<Image>/Filters/AI/BAGEL' in proc.get_menu_paths(), '%s menu %s' % (name, proc.get_menu_paths()))
    edit = pdb.lookup_procedure('plug-in-bagel-edit')
    defaults = edit.create_config()
    for k, v in {'seed': -1, 'steps': 50, 'cfg-text': 4.0, 'cfg-image': 2.0,
                 'cfg-interval-start': 0.0, 'timestep-shift': 3.0, 'renorm-type': 'text-channel',
                 'renorm-min': 0.0, 'think': False, 'use-selection': True}.items():
        check(defaults.get_property(k) == v, 'edit default %s = %r' % (k, defaults.get_property(k)))
    gen = pdb.lookup_procedure('plug-in-bagel-generate').create_config()
    check(gen.get_property('cfg-interval-start') == 0.4 and gen.get_property('renorm-type') == 'global',
          'generate defaults')
    desc = pdb.lookup_procedure('plug-in-bagel-describe').create_config()
    check(desc.get_property('question') == 'Describe this image in detail.', 'describe default question')


# ---- edit ------------------------------------------------------------------------------------

@case
def edit_new_layer():
    img = new_image(64, 48)
    src = add_layer(img, 64, 48, lambda x, y: pattern(x, y)[:3] + (255 - x,))
    before = pixels(src)
    if TRACE:
        open(TRACE, 'w').close()
    layer, reasoning = run_ok('plug-in-bagel-edit', img, [src], instruction='make it fake',
                              seed=5, steps=3)
    check(layer.get_name() == 'BAGEL: make it fake (seed 5)', 'name ' + layer.get_name())
    check((layer.get_width(), layer.get_height()) == (64, 48), 'size')
    check(tuple(layer.get_offsets())[1:] == (0, 0), 'offsets')
    check(layer_index(img, layer) == layer_index(img, src) - 1, 'not right above the source')
    check(pixels(src) == before, 'the source layer changed')
    want = fake_edit(before, 5)
    got = pixels(layer)
    check(got == want, 'pixels: ' + first_diff(got, want, 64))
    check(reasoning == '', 'reasoning without think: %r' % reasoning)
    s = settings(layer)
    for k, v in {'procedure': 'plug-in-bagel-edit', 'mode': 'edit', 'instruction': 'make it fake',
                 'prompt': 'make it fake', 'seed': 5, 'requested-seed': 5, 'steps': 3,
                 'cfg-text': 4.0, 'cfg-image': 2.0, 'cfg-interval-start': 0.0,
                 'timestep-shift': 3.0, 'renorm-type': 'text-channel', 'renorm-min': 0.0,
                 'use-selection': True, 'think': False, 'model-size': [64, 48],
                 'region': {'x': 0, 'y': 0, 'width': 64, 'height': 48}}.items():
        check(s.get(k) == v, 'parasite %s = %r' % (k, s.get(k)))
    check(s['engine'].startswith('bagel-engine'), 'parasite engine %r' % s['engine'])
    if TRACE:
        lines = [l for l in open(TRACE).read().split('\n') if l]
        # the progress bar followed the engine: the denoise steps 1..2 of 2 (steps 3)
        progress = [l for l in lines if l.startswith('progress ')]
        check('progress denoise 1/2' in progress and 'progress denoise 2/2' in progress,
              'progress %s' % progress)
        steps = [l.split()[0] for l in lines if not l.startswith('progress ')]
        check(steps[0] == 'undo-group-start' and steps[-1] == 'undo-group-end'
              and steps.count('undo-group-start') == 1,
              'image changes outside one undo group: %s' % steps)
        check('insert-layer' in steps and 'write-pixels' in steps and 'attach-parasite' in steps,
              'trace %s' % steps)
    check(img.undo_is_enabled(), 'undo disabled')
    img.delete()


@case
def edit_reproduces_from_parasite():
    img = new_image(32, 32)
    src = add_layer(img, 32, 32, pattern)
    a, _ = run_ok('plug-in-bagel-edit', img, [src], instruction='again', seed=-1, steps=2)
    s = settings(a)
    seed = s['seed']
    check(re.fullmatch(r'BAGEL: again \(seed %d\)' % seed, a.get_name()), 'name ' + a.get_name())
    check(s['requested-seed'] == -1 and 0 <= seed < 2 ** 31, 'seeds %r' % s)
    b, _ = run_ok('plug-in-bagel-edit', img, [src], instruction=s['instruction'], seed=seed,
                  steps=s['steps'], cfg_text=s['cfg-text'], cfg_image=s['cfg-image'],
                  cfg_interval_start=s['cfg-interval-start'], timestep_shift=s['timestep-shift'],
                  renorm_type=s['renorm-type'], renorm_min=s['renorm-min'])
    check(pixels(a) == pixels(b), 'the same settings gave other pixels')
    check(pixels(a) == fake_edit(pixels(src), seed), 'pixels do not follow the reported seed')
    img.delete()


@case
def edit_think():
    img = new_image(16, 16)
    src = add_layer(img, 16, 16, pattern)
    layer, reasoning = run_ok('plug-in-bagel-edit', img, [src], instruction='think about it',
                              think=True, seed=1, steps=2)
    check(reasoning == 'fake reasoning about "think about it"', 'reasoning %r' % reasoning)
    check(settings(layer)['think'] is True, 'think not recorded')
    img.delete()


@case
def edit_layer_with_offsets():
    img = new_image(100, 80)
    add_layer(img, 100, 80, lambda x, y: (0, 0, 0, 255), name='background')
    src = add_layer(img, 50, 40, pattern, offsets=(13, 21))
    layer, _ = run_ok('plug-in-bagel-edit', img, [src], instruction='offsets', seed=9, steps=2)
    check((layer.get_width(), layer.get_height()) == (50, 40), 'size')
    check(tuple(layer.get_offsets())[1:] == (13, 21), 'offsets %s' % (tuple(layer.get_offsets()),))
    check(pixels(layer) == fake_edit(pixels(src), 9), 'pixels')
    img.delete()


@case
def edit_gray_image():
    img = new_image(40, 30, Gimp.ImageBaseType.GRAY)
    src = add_layer(img, 40, 30, lambda x, y: ((x * 6 + y) & 255,) * 3 + (255,))
    layer, _ = run_ok('plug-in-bagel-edit', img, [src], instruction='gray', seed=0, steps=2)
    check(layer.get_width() == 40 and layer.get_height() == 30, 'size')
    check(layer.type() in (Gimp.ImageType.GRAYA_IMAGE,), 'layer type %s' % layer.type())
    want = fake_edit(pixels(src), 0)
    got = pixels(layer)
    # gray → sRGB → gray through babl: equal channels come back within one level
    worst = max(abs(a - b) for a, b in zip(got, want))
    check(worst <= 1, 'gray pixels off by %d' % worst)
    img.delete()


@case
def edit_indexed_image():
    img = new_image(40, 30)
    add_layer(img, 40, 30, lambda x, y: (255, 255, 255, 255) if (x // 5 + y // 5) % 2 else (0, 0, 0, 255),
              alpha=False)
    check(img.convert_indexed(Gimp.ConvertDitherType.NONE, Gimp.ConvertPaletteType.GENERATE, 2,
                              False, False, ''), 'convert to indexed')
    src = img.get_layers()[0]
    before = pixels(src)
    layer, _ = run_ok('plug-in-bagel-edit', img, [src], instruction='indexed', seed=0, steps=2)
    check(img.get_base_type() == Gimp.ImageBaseType.INDEXED, 'image mode changed')
    check(layer.type() == Gimp.ImageType.INDEXEDA_IMAGE, 'layer type %s' % layer.type())
    # black ↔ white: both in the palette, so exact
    got = pixels(layer)
    want = fake_edit(before, 0)
    check(got == want, 'indexed pixels: ' + first_diff(got, want, 40))
    check(pixels(src) == before, 'source changed')
    img.delete()


@case
def edit_large_layers():
    # 1500×1100: sent as is (the engine scales it); 4200×600: pre-scaled by the plug-in
    # to the model size (1024×144), the result scaled back to the layer.
    for w, h, model in ((1500, 1100, [1500, 1100]), (4200, 600, [1024, 144])):
        img = new_image(w, h)
        src = add_layer(img, w, h, lambda x, y: (x * 255 // w, y * 255 // h, 128, 255))
        t0 = time.time()
        layer, _ = run_ok('plug-in-bagel-edit', img, [src], instruction='large', seed=0, steps=2)
        dt = time.time() - t0
        check((layer.get_width(), layer.get_height()) == (w, h), 'size %dx%d' % (layer.get_width(), layer.get_height()))
        check(settings(layer)['model-size'] == model, 'model size %r' % settings(layer)['model-size'])
        got, want = pixels(layer), fake_edit(pixels(src), 0)
        mean = sum(abs(a - b) for a, b in zip(got[::97], want[::97])) / len(got[::97])
        check(mean < (0.5 if model[0] == w else 3.0), 'mean error %.2f after scaling' % mean)
        print('#   %dx%d edit in %.2f s (mean |error| %.2f)' % (w, h, dt, mean), flush=True)
        img.delete()


# ---- selection ---------------------------------------------------------------------------------

def selection_case(select):
    img = new_image(80, 60)
    src = add_layer(img, 80, 60, pattern, alpha=False)
    select(img)
    before_composite = pixels(img.duplicate().flatten())
    sel = Gimp.Selection.bounds(img)
    layer, _ = run_ok('plug-in-bagel-edit', img, [src], instruction='only there', seed=3, steps=2,
                      use_selection=True)
    x1, y1, x2, y2 = sel[2], sel[3], sel[4], sel[5]
    check((layer.get_width(), layer.get_height()) == (x2 - x1, y2 - y1), 'size %dx%d, selection %s' %
          (layer.get_width(), layer.get_height(), sel))
    check(tuple(layer.get_offsets())[1:] == (x1, y1), 'offsets')
    check(layer.get_mask() is not None, 'no mask')
    mask = pixels(img.get_selection(), 'Y u8')
    flat = pixels(img.duplicate().flatten())
    src_px = pixels(src)
    want_inside = fake_edit(src_px, 3)
    outside = inside = 0
    for y in range(60):
        for x in range(80):
            m = mask[y * 80 + x]
            i = (y * 80 + x) * 4
            if m == 0:
                outside += 1
                check(flat[i:i + 3] == before_composite[i:i + 3], 'pixel (%d, %d) outside the selection changed' % (x, y))
            elif m == 255:
                inside += 1
                check(flat[i:i + 3] == want_inside[i:i + 3], 'pixel (%d, %d) inside: %s != %s' %
                      (x, y, tuple(flat[i:i + 3]), tuple(want_inside[i:i + 3])))
    check(outside > 0 and inside > 0, 'degenerate selection')
    check(settings(layer)['region'] == {'x': x1, 'y': y1, 'width': x2 - x1, 'height': y2 - y1}, 'region')
    img.delete()


@case
def selection_rectangle():
    selection_case(lambda img: img.select_rectangle(Gimp.ChannelOps.REPLACE, 20, 10, 30, 25))


@case
def selection_feathered_ellipse():
    def sel(img):
        Gimp.context_set_feather(True)
        Gimp.context_set_feather_radius(4, 4)
        img.select_ellipse(Gimp.ChannelOps.REPLACE, 15, 12, 40, 30)
        Gimp.context_set_feather(False)
    selection_case(sel)


@case
def selection_outside_layer():
    img = new_image(100, 100)
    src = add_layer(img, 30, 30, pattern)
    img.select_rectangle(Gimp.ChannelOps.REPLACE, 60, 60, 20, 20)
    status, values = run('plug-in-bagel-edit', img, [src], instruction='nothing there', seed=1, steps=2)
    check(status != Gimp.PDBStatusType.SUCCESS, 'accepted a selection that misses the layer')
    check(len(img.get_layers()) == 1, 'a layer was added')
    img.delete()


# ---- generate, describe, presets ---------------------------------------------------------------

@case
def generate_canvas_size():
    img = new_image(200, 120)
    bg = add_layer(img, 200, 120, pattern)
    layer, _ = run_ok('plug-in-bagel-generate', img, [bg], prompt='a fake cat', seed=4, steps=2)
    check((layer.get_width(), layer.get_height()) == (200, 120), 'size')
    check(tuple(layer.get_offsets())[1:] == (0, 0), 'offsets')
    check(layer.get_name() == 'BAGEL: a fake cat (seed 4)', layer.get_name())
    s = settings(layer)
    check(s['model-size'] == [1024, 608] and s['width'] == 200 and s['height'] == 120, 'settings %r' % s)
    check(layer_index(img, layer) == 0, 'not on top')
    # the fake's pattern, red = (x + seed) mod 256 at 1024×608, scaled to 200×120: check
    # it where the scaled x is away from the wrap-around
    px = pixels(layer)
    for x in range(200):
        mx = (x + 0.5) * 1024 / 200 - 0.5
        if 16 < (mx + 4) % 256 < 240:
            red = px[(60 * 200 + x) * 4]
            check(abs(red - (mx + 4) % 256) <= 4, 'red at x=%d: %d, expected %.1f' % (x, red, (mx + 4) % 256))
    img.delete()


@case
def generate_given_size():
    img = new_image(50, 50)
    bg = add_layer(img, 50, 50, pattern)
    layer, _ = run_ok('plug-in-bagel-generate', img, [bg], prompt='square', seed=0, steps=2,
                      width=64, height=32)
    check((layer.get_width(), layer.get_height()) == (64, 32), 'size')
    check(settings(layer)['model-size'] == [1024, 512], 'model size')
    img.delete()


@case
def describe():
    img = new_image(64, 48)
    src = add_layer(img, 64, 48, pattern)
    text, reasoning = run_ok('plug-in-bagel-describe', img, [src])
    check(text == 'fake answer to "Describe this image in detail." about a 64x48 image', 'text %r' % text)
    check(reasoning == '', 'reasoning %r' % reasoning)
    text, reasoning = run_ok('plug-in-bagel-describe', img, [src], question='What is this?', think=True)
    check(text == 'fake answer to "What is this?" about a 64x48 image', 'text %r' % text)
    check(reasoning == 'fake reasoning about "What is this?"', 'reasoning %r' % reasoning)
    check(len(img.get_layers()) == 1, 'describe added a layer')
    img.delete()


def preset_file(kind):
    with open(os.path.join(os.environ['BAGEL_PRESETS_DIR'], kind + '.json')) as f:
        return json.load(f)['presets']


@case
def style_presets():
    presets = preset_file('style')
    ids = [p['id'] for p in presets]
    for want in ('watercolor', 'oil-painting', 'pixel-art', 'anime', 'pencil-sketch', 'photorealistic'):
        check(want in ids, 'style preset %s missing' % want)
    img = new_image(24, 24)
    src = add_layer(img, 24, 24, pattern)
    for p in presets:
        layer, _ = run_ok('plug-in-bagel-style', img, [src], preset=p['id'], seed=2, steps=2)
        check(layer.get_name() == 'BAGEL: %s (seed 2)' % p['name'], layer.get_name())
        s = settings(layer)
        check(s['prompt'] == p['instruction'] and s['preset'] == p['id'], 'prompt %r' % s['prompt'])
    layer, _ = run_ok('plug-in-bagel-style', img, [src], preset='watercolor',
                      extra_instruction='with a moon', seed=2, steps=2)
    check(layer.get_name() == 'BAGEL: Watercolor, with a moon (seed 2)', layer.get_name())
    check(settings(layer)['prompt'] == presets[0]['instruction'] + ' with a moon', 'prompt with extra')
    check(pixels(layer) == fake_edit(pixels(src), 2), 'pixels')
    img.delete()


@case
def multiview_presets():
    presets = preset_file('multiview')
    ids = [p['id'] for p in presets]
    for want in ('front', 'back', 'left', 'right', 'top', 'rotate-90'):
        check(want in ids, 'multiview preset %s missing' % want)
    img = new_image(24, 24)
    src = add_layer(img, 24, 24, pattern)
    for p in presets:
        layer, _ = run_ok('plug-in-bagel-multiview', img, [src], preset=p['id'], seed=6, steps=2)
        check(layer.get_name() == 'BAGEL: %s (seed 6)' % p['name'], layer.get_name())
        check(settings(layer)['prompt'] == p['instruction'], 'prompt')
    img.delete()


@case
def calling_errors():
    img = new_image(16, 16)
    src = add_layer(img, 16, 16, pattern)
    status, _ = run('plug-in-bagel-edit', img, [src], instruction='   ', seed=1, steps=2)
    check(status == Gimp.PDBStatusType.CALLING_ERROR, 'empty instruction: %s' % status)
    status, _ = run('plug-in-bagel-edit', img, [img.get_selection()], instruction='x', seed=1, steps=2)
    check(status == Gimp.PDBStatusType.CALLING_ERROR, 'a channel: %s' % status)
    check(len(img.get_layers()) == 1, 'a layer was added')
    img.delete()


# ---- the engine going away ------------------------------------------------------------------------

@case
def cancel_leaves_image_unchanged():
    # GIMP's Cancel kills the plug-in; do the same mid-job.
    img = new_image(32, 32)
    src = add_layer(img, 32, 32, pattern)
    before = pixels(src)
    run_ok('plug-in-bagel-edit', img, [src], instruction='warm up', seed=1, steps=2)
    st0 = engine_status()
    n_layers = len(img.get_layers())
    killer = kill_later('plug-ins/gimp-bagel/gimp-bagel', 0.5)
    t0 = time.time()
    status, _ = run('plug-in-bagel-edit', img, [src], instruction='slow', seed=1, steps=400)
    dt = time.time() - t0
    killer.wait()
    check(status != Gimp.PDBStatusType.SUCCESS, 'the killed run succeeded')
    check(dt < 1.9, 'the run lasted %.1f s (the job takes 2 s)' % dt)
    check(len(img.get_layers()) == n_layers and pixels(src) == before, 'the image changed')
    for _ in range(100):
        st = engine_status()
        if st['jobs_cancelled'] > st0['jobs_cancelled']:
            break
        time.sleep(0.02)
    check(st['pid'] == st0['pid'], 'the engine restarted')
    check(st['jobs_cancelled'] == st0['jobs_cancelled'] + 1, 'job not cancelled: %r' % st)
    check(st['model_loaded'] and st['model_loads'] == st0['model_loads'], 'model reloaded: %r' % st)
    img.delete()


@case
def engine_killed_mid_job():
    img = new_image(32, 32)
    src = add_layer(img, 32, 32, pattern)
    run_ok('plug-in-bagel-edit', img, [src], instruction='warm up', seed=1, steps=2)
    first = engine_pid()
    check(first, 'no engine.pid')
    killer = kill_later('bagel-engine*', 0.5)
    status, values = run('plug-in-bagel-edit', img, [src], instruction='slow', seed=1, steps=400)
    killer.wait()
    check(status == Gimp.PDBStatusType.EXECUTION_ERROR, 'status %s' % status)
    msg = values[0] if values and isinstance(values[0], str) else pdb.get_last_error()
    check('stopped during the job' in msg, 'error message %r' % msg)
    check(len(img.get_layers()) == 2, 'layers %d' % len(img.get_layers()))
    layer, _ = run_ok('plug-in-bagel-edit', img, [src], instruction='again', seed=7, steps=2)
    check(engine_pid() != first, 'the same engine pid')
    check(pixels(layer) == fake_edit(pixels(src), 7), 'pixels after restart')
    img.delete()


@case
def backend_warning_shown():
    """A GPU the engine found but could not use: the engine runs on the CPU and the plug-in
    shows why (gimp_message), once per engine start.  The fake engine takes the note from
    BAGEL_FAKE_BACKEND_NOTE_FILE when it loads (run-gimp-tests sets the path)."""
    note_file = os.environ.get('BAGEL_FAKE_BACKEND_NOTE_FILE')
    if not note_file or not TRACE:
        raise Skip('needs the fake engine and the plug-in trace')
    img = new_image(16, 16)
    src = add_layer(img, 16, 16, pattern)
    run_ok('plug-in-bagel-edit', img, [src], instruction='warm up', seed=1, steps=2)
    note = 'the CUDA backend cannot start: test GPU (sm_75) is too old; using the CPU backend'
    with open(note_file, 'w') as f:
        f.write(note + '\n')
    try:
        first = engine_pid()
        check(first, 'no engine.pid')
        os.kill(first, 9)   # the next call starts a fresh engine, which loads with the note
        for _ in range(100):
            if not os.path.exists('/proc/%d' % first) or \
                    open('/proc/%d/stat' % first).read().split()[2] == 'Z':
                break
            time.sleep(0.05)
        shown = []
        for i in range(2):
            open(TRACE, 'w').close()
            layer, _ = run_ok('plug-in-bagel-edit', img, [src], instruction='on the cpu',
                              seed=3, steps=2)
            check(pixels(layer) == fake_edit(pixels(src), 3), 'pixels')
            shown.append([l for l in open(TRACE).read().split('\n')
                          if l.startswith('engine warning: ')])
        check(engine_pid() != first, 'the same engine pid')
        check(shown[0] == ['engine warning: ' + note], 'first result: %r' % shown[0])
        check(shown[1] == [], 'the warning came again: %r' % shown[1])
    finally:
        os.remove(note_file)
    img.delete()


# ---- dialogs (under Xvfb, BAGEL_DIALOG_TEST) -----------------------------------------------------

def labels(node, acc):
    if 'label' in node:
        acc.append(node['label'])
    for c in node.get('children', []):
        labels(c, acc)
    return acc


def find(node, pred):
    if pred(node):
        return node
    for c in node.get('children', []):
        r = find(c, pred)
        if r:
            return r
    return None


@case
def dialogs():
    if not os.environ.get('DISPLAY') or not os.environ.get('BAGEL_DIALOG_TEST'):
        raise Skip('no display (Xvfb) for the dialogs')
    prefix = os.environ['BAGEL_DIALOG_TEST']
    img = new_image(48, 32)
    src = add_layer(img, 48, 32, pattern)
    main_labels = {
        'plug-in-bagel-edit': ['Instruction', 'Think first', 'Edit only the selection'],
        'plug-in-bagel-generate': ['Prompt', 'Width', 'Height', 'Think first'],
        'plug-in-bagel-describe': ['Question', 'Think first'],
        'plug-in-bagel-style': ['Style preset', 'Extra instruction', 'Think first', 'Edit only the selection'],
        'plug-in-bagel-multiview': ['View', 'Extra instruction'],
    }
    advanced = {
        'plug-in-bagel-edit': ['Seed', 'Steps', 'Text guidance', 'Image guidance', 'Guidance start',
                               'Timestep shift', 'Renorm type', 'Renorm minimum'],
        'plug-in-bagel-generate': ['Seed', 'Steps', 'Text guidance', 'Guidance start', 'Timestep shift'],
        'plug-in-bagel-describe': ['Maximum length', 'Seed'],
        'plug-in-bagel-style': ['Steps', 'Image guidance'],
        'plug-in-bagel-multiview': ['Steps'],
    }
    for name in main_labels:
        path = prefix + '-' + name + '.json'
        if os.path.exists(path):
            os.unlink(path)
        # An interactive run starts from the arguments given only the first time in a GIMP
        # session (then from the last used values): one run per procedure.
        args = {'steps': 2, 'seed': 1} if name != 'plug-in-bagel-describe' else {'think': True}
        if name == 'plug-in-bagel-edit':
            args.update(instruction='from the dialog', think=True)
        if name == 'plug-in-bagel-generate':
            args['prompt'] = 'from the dialog'
        if os.path.exists(prefix + '-text.json'):
            os.unlink(prefix + '-text.json')
        status, values = run(name, img, [src], run_mode=Gimp.RunMode.INTERACTIVE, **args)
        check(status == Gimp.PDBStatusType.SUCCESS, '%s interactive: %s %s' % (name, status, values))
        check(os.path.exists(path), name + ': no dialog dump (was the dialog built?)')
        if name == 'plug-in-bagel-edit':
            # think mode shows the reasoning after the edit
            check(os.path.exists(prefix + '-text.json'), 'no reasoning dialog; the run returned %r' % (values,))
            text = json.load(open(prefix + '-text.json'))
            view = find(text, lambda n: n['type'] == 'GtkTextView')
            check(view and view['text'] == 'fake reasoning about "from the dialog"',
                  'reasoning dialog %r' % view)
        if name == 'plug-in-bagel-describe':
            # describe with think shows its answer (copyable) and its reasoning
            text = json.load(open(prefix + '-text.json'))
            views = []
            find(text, lambda n: n['type'] == 'GtkTextView' and views.append(n) and False)
            check(len(views) == 2 and views[0]['text'].startswith('fake answer to') and
                  views[1]['text'].startswith('fake reasoning about') and
                  not views[0]['editable'], 'describe with think: %r' % views)
            exp = find(text, lambda n: n['type'] == 'GtkExpander')
            check(exp and 'Reasoning' in labels(exp, []), 'no Reasoning expander')
            check('Copy' in [l.replace('_', '') for l in labels(text, [])], 'no Copy button')
        tree = json.load(open(path))
        exp = find(tree, lambda n: n['type'] == 'GtkExpander')
        check(exp is not None, name + ': no expander')
        check(exp['expanded'] is False, name + ': the advanced section is not collapsed')
        inside = [l.replace('_', '') for l in labels(exp, [])]
        check('Advanced' in inside, name + ': expander title %s' % inside[:3])
        everything = [l.replace('_', '') for l in labels(tree, [])]
        outside = list(everything)
        for l in inside:
            outside.remove(l)
        for l in main_labels[name]:
            check(l in outside, '%s: "%s" not in the main part: %s' % (name, l, outside))
        for l in advanced[name]:
            check(l in inside, '%s: "%s" not in the advanced section: %s' % (name, l, inside))
    img.delete()


# ---- the real model (second session: BAGEL_GIMP_REAL=1, the installed bagel-engine) -----

REAL = os.environ.get('BAGEL_GIMP_REAL') == '1'
real_cases = []


def real_case(fn):
    real_cases.append(fn)
    return fn


def write_png(path, w, h, rgb):
    """8-bit RGB PNG, filter 0: the bytes the CLI will read are exactly these."""
    import zlib
    raw = b''.join(b'\0' + rgb[y * w * 3:(y + 1) * w * 3] for y in range(h))

    def chunk(t, d):
        return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)) +
                chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))


def cli(*args):
    cmd = [os.environ['BAGEL_CLI'], args[0], '-m', os.environ['BAGEL_MODEL'], '--backend', 'cpu',
           '--threads', os.environ.get('BAGEL_THREADS', '2'), '-q'] + list(args[1:])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    check(r.returncode == 0, 'bagel %s failed: %s' % (args[0], r.stderr[-500:]))
    return r.stdout


def load_png(path):
    from gi.repository import Gio
    img = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(path))
    return img, img.get_layers()[0]


@real_case
def real_edit_equals_cli():
    # 512×512: the VAE transform (1024, 512, 16) leaves it as it is, so the plug-in sends
    # it unscaled and takes the result back unscaled: pixel equality is the claim.
    w = h = 512
    img = new_image(w, h)
    src = add_layer(img, w, h, pattern, alpha=False)
    before = pixels(src)
    layer, _ = run_ok('plug-in-bagel-edit', img, [src], instruction='Make the stripes green.',
                      seed=7, steps=2)
    check(pixels(src) == before, 'the source layer changed')
    check(settings(layer)['model-size'] == [512, 512], 'model size %r' % settings(layer)['model-size'])
    rgb = bytes(b for i, b in enumerate(before) if i % 4 != 3)
    path_in, path_out = os.path.join(OUT, 'real-in.png'), os.path.join(OUT, 'real-cli.png')
    write_png(path_in, w, h, rgb)
    cli('edit', '-i', path_in, '-p', 'Make the stripes green.', '--steps', '2', '-s', '7', '-o', path_out)
    cimg, clayer = load_png(path_out)
    got, want = pixels(layer), pixels(clayer)
    check(got == want, 'the plug-in and `bagel edit` differ: ' + first_diff(got, want, w))
    cimg.delete()
    img.delete()


@real_case
def real_describe_equals_cli():
    w, h = 100, 75
    img = new_image(w, h)
    src = add_layer(img, w, h, pattern, alpha=False)
    text, _ = run_ok('plug-in-bagel-describe', img, [src], question='What is in this image?',
                     max_tokens=12, seed=1)
    path_in = os.path.join(OUT, 'real-describe.png')
    write_png(path_in, w, h, bytes(b for i, b in enumerate(pixels(src)) if i % 4 != 3))
    out = json.loads(cli('describe', '-i', path_in, '-p', 'What is in this image?',
                         '--max-tokens', '12', '-s', '1', '--json'))
    check(text == out['text'], 'plug-in %r, CLI %r' % (text, out['text']))
    check(text != '', 'empty answer')
    img.delete()


@real_case
def real_generate():
    raise Skip('not run in GIMP: the plug-in generates at the model size for the canvas '
               '(long side 1024), about 90 s on two CPU cores with the tiny checkpoint; '
               'tests/server engine-real compares bagel-engine with `bagel generate` at 64×48')


# ---- run ----------------------------------------------------------------------------------------------

def main():
    for fn in (real_cases if REAL else cases):
        name = fn.__name__
        if ONLY and not re.search(ONLY, name):
            continue
        t0 = time.time()
        try:
            fn()
            status, msg = 'pass', ''
            print('ok - %s (%.2f s)' % (name, time.time() - t0), flush=True)
        except Skip as e:
            status, msg = 'skip', str(e)
            print('skip - %s: %s' % (name, msg), flush=True)
        except Todo as e:
            status, msg = 'todo', str(e)
            print('todo - %s: %s' % (name, msg), flush=True)
        except Exception as e:  # noqa: BLE001 — every failure is reported, the run goes on
            status, msg = 'fail', '%s: %s' % (type(e).__name__, e)
            print('not ok - %s: %s' % (name, msg), flush=True)
            traceback.print_exc()
        results.append({'name': name, 'status': status, 'message': msg,
                        'seconds': round(time.time() - t0, 3)})
    with open(os.path.join(OUT, 'results-real.json' if REAL else 'results.json'), 'w') as f:
        json.dump({'cases': results}, f, indent=1)


main()

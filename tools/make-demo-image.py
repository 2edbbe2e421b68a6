#!/usr/bin/env python3
"""tools/make-demo-image.py — draw resources/demo/house.png, the bundled demo input
(a simple scene: sky, sun, hills, a house).  Needs Debian's python3-pil; deterministic."""
import os
from PIL import Image, ImageDraw

W, H = 480, 320
img = Image.new('RGB', (W, H), (135, 190, 235))
d = ImageDraw.Draw(img)
for y in range(H // 2):                          # sky gradient
    c = 235 - y // 3
    d.line([(0, y), (W, y)], fill=(120 + y // 6, 180 + y // 10, c))
d.ellipse([370, 30, 430, 90], fill=(255, 215, 60))                     # sun
d.ellipse([-120, 180, 300, 420], fill=(90, 160, 70))                   # hills
d.ellipse([180, 200, 620, 460], fill=(70, 140, 60))
d.rectangle([150, 170, 290, 270], fill=(200, 80, 60))                  # house
d.polygon([(140, 175), (220, 110), (300, 175)], fill=(110, 60, 50))    # roof
d.rectangle([200, 215, 235, 270], fill=(90, 55, 35))                   # door
d.rectangle([160, 190, 190, 215], fill=(230, 240, 255))                # windows
d.rectangle([250, 190, 280, 215], fill=(230, 240, 255))
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'resources', 'demo', 'house.png')
img.save(out, optimize=True)
print(out)

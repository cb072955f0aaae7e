"""Realistic, deterministic inputs for the corpus models: rendered text lines and pages,
synthetic scenes, tones and noise, token ids and file bytes.

Every generator takes a seeded `numpy.random.Generator` and returns one item: a dict from
input name to an array *with* the model's batch axis (size 1), ready for ONNX Runtime. The
calibration and evaluation sets use different seeds, so the evaluation items are never seen
during calibration.
"""

import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

WORDS = (
    "the quick brown fox jumps over lazy dog invoice total amount date number page "
    "chapter model quantization tensor runtime layer weight scale zero point table figure "
    "street city road station north south east west market price order receipt customer "
    "hello world open close start stop enter exit warning danger caution 2024 2025 1999 "
    "42 17 3.14 100% $25.00 No.7 ID-9381 A4 B12 C-3PO tel: +86 010 6552 www example com "
    "Zurich Paris Beijing Tokyo Berlin Madrid Lagos Lima Quito Oslo Cairo Delhi Seoul"
).split()
CAPTCHA = "abcdefghijklmnopqrstuvwxyz0123456789"
CAPTCHA_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

_FONTS = {}


def font(size):
    """Pillow's embedded scalable font at `size` px (no system fonts: reproducible)."""
    if size not in _FONTS:
        _FONTS[size] = ImageFont.load_default(size=size)
    return _FONTS[size]


def phrase(rng, lo=1, hi=5):
    return " ".join(rng.choice(WORDS) for _ in range(int(rng.integers(lo, hi + 1))))


def ink(rng, dark=True):
    v = int(rng.integers(0, 80)) if dark else int(rng.integers(170, 256))
    tint = rng.integers(-25, 26, size=3)
    return tuple(int(np.clip(v + t, 0, 255)) for t in tint)


def paper(rng):
    v = int(rng.integers(200, 256))
    tint = rng.integers(-20, 1, size=3)
    return tuple(int(np.clip(v + t, 0, 255)) for t in tint)


def noisy(img, rng, sigma=6.0):
    a = np.asarray(img, dtype=np.float32)
    a = a + rng.normal(0.0, sigma, size=a.shape).astype(np.float32)
    return np.clip(a, 0, 255)


def text_line(rng, h, w, size=None, with_text=False):
    """A text line image [h, w, 3] (0..255): dark text on light paper, or light on dark;
    with `with_text`, (image, the characters drawn wholly inside it) (the same image for
    the same rng)."""
    inverted = rng.random() < 0.15
    bg, fg = (ink(rng), paper(rng)) if inverted else (paper(rng), ink(rng))
    img = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(img)
    size = size or int(rng.integers(int(h * 0.55), int(h * 0.8)))
    x = int(rng.integers(2, 12))  # drawn before the phrase, as it always was
    text = phrase(rng, 1, 4)
    d.text((x, (h - size) // 2 - 2), text, fill=fg, font=font(size))
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.3, 1.0))))
    img = noisy(img, rng)
    if not with_text:
        return img
    # What is on the image: long phrases run past the right edge.
    f = font(size)
    fits = max((k for k in range(len(text) + 1) if x + f.getlength(text[:k]) <= w), default=0)
    return img, text[:fits].strip()


def page(rng, h, w):
    """A document page [h, w, 3]: text lines of several sizes, a header bar, a table grid,
    a photo-like block."""
    img = Image.new("RGB", (w, h), paper(rng))
    d = ImageDraw.Draw(img)
    y = int(rng.integers(5, 30))
    if rng.random() < 0.5:
        d.rectangle([0, 0, w, int(h * 0.06)], fill=ink(rng, dark=rng.random() < 0.5))
    while y < h - 20:
        kind = rng.random()
        if kind < 0.12:  # a table
            rows, cols = int(rng.integers(2, 5)), int(rng.integers(2, 5))
            rh, cw = int(rng.integers(18, 30)), (w - 40) // cols
            for r in range(rows):
                for c in range(cols):
                    box = [20 + c * cw, y + r * rh, 20 + (c + 1) * cw, y + (r + 1) * rh]
                    d.rectangle(box, outline=ink(rng), width=1)
                    d.text((box[0] + 3, box[1] + 3), rng.choice(WORDS), fill=ink(rng), font=font(rh - 10))
            y += rows * rh + 10
        elif kind < 0.2:  # a picture
            bh = int(rng.integers(40, 120))
            x0 = int(rng.integers(10, max(11, w // 2)))
            col = tuple(int(c) for c in rng.integers(40, 220, size=3))
            d.rectangle([x0, y, min(w - 10, x0 + int(rng.integers(60, 260))), y + bh], fill=col)
            y += bh + 10
        else:
            size = int(rng.integers(12, 34))
            d.text((int(rng.integers(10, 60)), y), phrase(rng, 2, 8), fill=ink(rng), font=font(size))
            y += int(size * rng.uniform(1.2, 1.8))
    return noisy(img, rng, sigma=4.0)


def scene(rng, h, w):
    """A synthetic photo-like scene [h, w, 3]: sky/ground gradient, blobs, boxes, a sign with text."""
    yy = np.linspace(0, 1, h)[:, None, None]
    top = rng.integers(60, 230, size=3)
    bot = rng.integers(20, 200, size=3)
    a = (top * (1 - yy) + bot * yy) * np.ones((1, w, 1))
    img = Image.fromarray(a.astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 9))):
        cx, cy = rng.integers(0, w), rng.integers(0, h)
        rx, ry = rng.integers(w // 20, w // 4), rng.integers(h // 20, h // 3)
        skin = rng.random() < 0.4
        col = (
            tuple(int(c) for c in (rng.integers(170, 240), rng.integers(120, 190), rng.integers(90, 160)))
            if skin
            else tuple(int(c) for c in rng.integers(0, 256, size=3))
        )
        if rng.random() < 0.5:
            d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=col)
        else:
            d.rectangle([cx - rx, cy - ry, cx + rx, cy + ry], fill=col)
    if rng.random() < 0.6:
        x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
        d.rectangle([x0, y0, x0 + w // 3, y0 + h // 8], fill=paper(rng))
        d.text((x0 + 4, y0 + 2), rng.choice(WORDS), fill=ink(rng), font=font(max(8, h // 14)))
    img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.0, 1.5))))
    return noisy(img, rng, sigma=5.0)


def captcha(rng, h, w, n=None, charset=CAPTCHA):
    """A captcha: 4-6 characters, jittered, with lines and dots."""
    img = Image.new("RGB", (w, h), paper(rng))
    d = ImageDraw.Draw(img)
    n = n or int(rng.integers(4, 7))
    x = int(rng.integers(2, 10))
    for _ in range(n):
        size = int(rng.integers(int(h * 0.5), int(h * 0.8)))
        d.text((x, int(rng.integers(0, max(1, h - size - 4)))), str(rng.choice(list(charset))), fill=ink(rng), font=font(size))
        x += int(size * rng.uniform(0.5, 0.8))
    for _ in range(int(rng.integers(1, 4))):
        d.line([tuple(int(v) for v in rng.integers(0, [w, h])) for _ in range(2)], fill=ink(rng), width=1)
    for _ in range(int(w * h * 0.01)):
        px, py = int(rng.integers(0, w)), int(rng.integers(0, h))
        d.point((px, py), fill=ink(rng))
    return noisy(img, rng)


def chw(a):
    return np.ascontiguousarray(a.transpose(2, 0, 1))[None].astype(np.float32)


IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]


def imagenet(a):
    return ((chw(a) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)


def halves(a):
    return ((chw(a) / 255.0 - 0.5) / 0.5).astype(np.float32)


# ---- audio ---------------------------------------------------------------------------


def audio(rng, n, sr=16000):
    """`n` samples in [-1, 1]: a mix of voiced-speech-like pulses (a glottal train through
    formant resonances, amplitude-modulated), tones, chirps and background noise; some
    items are near-silence."""
    t = np.arange(n) / sr
    kind = rng.random()
    x = rng.normal(0, float(rng.uniform(0.002, 0.02)), n)
    if kind < 0.15:
        return x.astype(np.float32)
    if kind < 0.65:  # speech-like
        f0 = rng.uniform(90, 240)
        pulses = np.sign(np.sin(2 * np.pi * f0 * t + 0.3 * np.sin(2 * np.pi * 3 * t))) * 0.5
        for fm in rng.uniform([300, 900, 2200], [900, 2200, 3200]):
            pulses = pulses + 0.4 * np.sin(2 * np.pi * fm * t) * (pulses > 0)
        env = 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(2, 6) * t + rng.uniform(0, 6)))
        x = x + 0.3 * pulses * env
    elif kind < 0.85:  # tones
        for f in rng.uniform(200, 4000, size=int(rng.integers(1, 4))):
            x = x + float(rng.uniform(0.05, 0.3)) * np.sin(2 * np.pi * f * t)
    else:  # chirp
        f0, f1 = rng.uniform(100, 500), rng.uniform(1000, 6000)
        x = x + 0.3 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * t[-1])))
    return np.clip(x, -1, 1).astype(np.float32)


# ---- file bytes (magika) -------------------------------------------------------------


def file_bytes(rng):
    kind = rng.integers(0, 8)
    if kind == 0:
        body = (" ".join(phrase(rng, 5, 12) + "." for _ in range(80))).encode()
    elif kind == 1:
        body = ("{\n" + ",\n".join(f'  "{rng.choice(WORDS)}{i}": {rng.integers(0, 1000)}' for i in range(120)) + "\n}\n").encode()
    elif kind == 2:
        lines = [f"def {rng.choice(WORDS)}_{i}(x, y):\n    return x * {rng.integers(1, 9)} + y\n" for i in range(60)]
        body = ("import os\nimport sys\n\n" + "\n".join(lines)).encode()
    elif kind == 3:
        body = "\n".join(",".join(str(rng.integers(0, 10000)) for _ in range(6)) for _ in range(200)).encode()
    elif kind == 4:
        body = ("<!DOCTYPE html>\n<html><head><title>" + phrase(rng) + "</title></head><body>\n"
                + "".join(f"<p class=\"c{i}\">{phrase(rng, 3, 9)}</p>\n" for i in range(80)) + "</body></html>\n").encode()
    elif kind == 5:
        img = Image.fromarray(scene(rng, 64, 64).astype(np.uint8), "RGB")
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        body = buf.getvalue()
    elif kind == 6:
        body = b"\x7fELF\x02\x01\x01" + bytes(9) + rng.integers(0, 256, size=6000, dtype=np.uint8).tobytes()
    else:
        body = b"PK\x03\x04" + rng.integers(0, 256, size=5000, dtype=np.uint8).tobytes()
    return body


def magika_features(body, n=1024, pad=256):
    """magika 1.x's input layout: the first and last `n` bytes, padded with `pad`."""
    beg = list(body[:n]) + [pad] * max(0, n - len(body))
    end = [pad] * max(0, n - len(body)) + list(body[-n:])
    return np.array([beg + end], dtype=np.int32)


def token_ids(rng, vocab, lo, hi, cls=None, sep=None, reserved=4):
    n = int(rng.integers(lo, hi + 1))
    ids = list(rng.integers(reserved, vocab, size=n))
    if cls is not None:
        ids = [cls] + ids
    if sep is not None:
        ids = ids + [sep]
    return np.array([ids], dtype=np.int64)


def rotate_k(a, k):
    return np.ascontiguousarray(np.rot90(a, k=k, axes=(0, 1)))


def resize(a, h, w):
    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")
    return np.asarray(img.resize((w, h), Image.BILINEAR), dtype=np.float32)


def gray(a):
    return (a @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.float32)


def hann_frames(x, n):
    k = math.ceil(len(x) / n)
    return np.pad(x, (0, k * n - len(x))).reshape(k, n)

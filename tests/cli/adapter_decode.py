"""An independent decoder of deltakit adapters: h5py for the tree and attributes, raw chunks read
with read_direct_chunk and decompressed by python-zstandard (no HDF5 filter plugin), numpy for
the codecs. It shares no code with deltakit and follows docs/formats.md only."""
import h5py
import numpy as np
import zstandard

KINDS = {"uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64,
         "float32": np.float32}


def unshuffle(data, itemsize):
    """HDF5's shuffle filter stores byte k of every element together, k = 0 .. itemsize-1."""
    return np.frombuffer(data, np.uint8).reshape(itemsize, -1).T.tobytes()


def read_dataset(ds):
    """A dataset's array from its raw chunks: each is a zstd frame plus a 4-byte Fletcher32, the
    frame's content byte-shuffled where the dataset has the shuffle filter (multi-byte elements)."""
    out = np.zeros(ds.shape, ds.dtype)
    chunk = ds.chunks
    assert not ds.shuffle or ds.dtype.itemsize > 1, "shuffle on single bytes"
    for i in range(ds.id.get_num_chunks()):
        off = ds.id.get_chunk_info(i).chunk_offset
        mask, raw = ds.id.read_direct_chunk(off)
        assert mask == 0, "a filter was skipped"
        data = zstandard.ZstdDecompressor().decompress(raw[:-4])
        if ds.shuffle:
            data = unshuffle(data, ds.dtype.itemsize)
        block = np.frombuffer(data, ds.dtype).reshape(chunk)
        sel = tuple(slice(o, min(o + c, s)) for o, c, s in zip(off, chunk, ds.shape))
        out[sel] = block[tuple(slice(0, s.stop - s.start) for s in sel)]
    return out


def values(ds):
    """Stored values as float32 (uint16 with encoding bfloat16/float16, or float32)."""
    a = read_dataset(ds)
    enc = ds.attrs.get("encoding", "")
    if enc == "bfloat16":
        return (a.astype(np.uint32) << 16).view(np.float32)
    if enc == "float16":
        return a.view(np.float16).astype(np.float32)
    return a.astype(np.float32)


def positions(g, prefix, n):
    coding, count = g.attrs[prefix + ".positions_coding"], int(g.attrs[prefix + ".count"])
    raw = read_dataset(g[prefix + ".positions"])
    if coding == "bitmap":
        pos = np.flatnonzero(np.unpackbits(raw, bitorder="little")[:n])
    else:  # LEB128 gaps, pos = prev + 1 + gap
        pos, prev, val, shift = [], -1, 0, 0
        for b in raw.tolist():
            val |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                prev = prev + 1 + val
                pos.append(prev)
                val, shift = 0, 0
        pos = np.array(pos, np.int64)
    assert len(pos) == count
    return pos


def bitdelta(g, n, row_len):
    """δ̂ of a dense BitDelta tensor: ±scale of the entry's unit (and level)."""
    signs = np.unpackbits(read_dataset(g["bitdelta.signs"]), bitorder="little")[:n].astype(bool)
    scales = read_dataset(g["bitdelta.scales"])
    unit = {"matrix": np.zeros(n, np.int64), "row": np.arange(n) // row_len,
            "group": np.arange(n) // max(int(g.attrs["bitdelta.group"]), 1)}[g.attrs["bitdelta.scale"]]
    levels = int(g.attrs["bitdelta.levels"])
    level = np.zeros(n, np.int64)
    if levels > 1:
        w = levels.bit_length() - 1
        bits = np.unpackbits(read_dataset(g["bitdelta.level"]), bitorder="little")[:n * w].reshape(n, w)
        level = (bits.astype(np.int64) << np.arange(w)).sum(axis=1)
    mag = scales[unit, level]
    return np.where(signs, mag, -mag).astype(np.float32)


def quant(g, n):
    bits, group = int(g.attrs["quant.bits"]), int(g.attrs["quant.group"])
    fields = np.unpackbits(read_dataset(g["quant.codes"]), bitorder="little")[:n * bits].reshape(n, bits)
    q = (fields.astype(np.int64) << np.arange(bits)).sum(axis=1)
    mins, steps = read_dataset(g["quant.mins"]), read_dataset(g["quant.steps"])
    gi = np.arange(n) // group
    return (mins[gi] + q.astype(np.float32) * steps[gi]).astype(np.float32)


def decode(g):
    """δ̂ of one tensor group for the codecs this decoder knows (dense float32, flat)."""
    shape = [int(d) for d in g.attrs["shape"]]
    n = int(np.prod(shape)) if shape else 1
    row_len = shape[-1] if shape else 1
    codec = g.attrs["codec"]
    if codec == "bitdelta":
        return bitdelta(g, n, row_len)
    if codec == "quant":
        return quant(g, n)
    if codec == "dare":
        out = np.zeros(n, np.float32)
        out[positions(g, "dare", n)] = values(g["dare.values"])
        return out
    raise ValueError(f"this decoder does not know codec {codec}")

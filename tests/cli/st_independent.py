"""An independent safetensors reader and writer (python3 json + struct only), used by the CLI
tests to check deltakit's output and to craft corrupt inputs. It shares no code with deltakit."""
import json
import os
import struct

DTYPE_SIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "I16": 2,
              "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "F64": 8, "I64": 8,
              "U64": 8}


def read_file(path):
    """Returns (header dict, data bytes); asserts the reference layout rules."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    assert (8 + n) % 8 == 0, f"{path}: data not 8-aligned"
    data = blob[8 + n:]
    end = 0
    for name, info in sorted(((k, v) for k, v in header.items() if k != "__metadata__"),
                             key=lambda kv: kv[1]["data_offsets"]):
        b, e = info["data_offsets"]
        numel = 1
        for d in info["shape"]:
            numel *= d
        assert b == end and e - b == numel * DTYPE_SIZE[info["dtype"]], f"{path}: bad {name}"
        end = e
    assert end == len(data), f"{path}: data length"
    return header, data


def read_checkpoint(folder):
    """{name: (dtype, shape, bytes)} for a checkpoint folder (single file or index + shards)."""
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
    else:
        shards = ["model.safetensors"]
    out = {}
    for shard in shards:
        header, data = read_file(os.path.join(folder, shard))
        for name, info in header.items():
            if name == "__metadata__":
                continue
            b, e = info["data_offsets"]
            assert name not in out
            out[name] = (info["dtype"], info["shape"], data[b:e])
    return out


def write_raw(path, header_obj, data, header_text=None):
    """Write a safetensors-like file from a header (dict, or raw text) and data bytes."""
    text = header_text if header_text is not None else json.dumps(header_obj)
    raw = text.encode("utf-8")
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        f.write(data)

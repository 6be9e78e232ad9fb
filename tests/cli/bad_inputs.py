#!/usr/bin/env python3
"""Handcrafted bad inputs for the deltakit CLI, enumerated in one place (as ggml's
test-gguf.cpp does). Each case builds a fixture, breaks one thing, runs one command, and checks:
exit code 1 or 2 (never a crash or hang), exactly one line on stderr naming the bad file and the
problem, and nothing (not even a temporary) left at the output path.

    bad_inputs.py --deltakit BIN --case NAME     run one case (CTest runs each as its own test)
    bad_inputs.py --list                         print the case names
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_independent import read_file, write_raw  # noqa: E402

CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


class Ctx:
    def __init__(self, deltakit, work):
        self.deltakit, self.work = deltakit, work

    def path(self, *parts):
        return os.path.join(self.work, *parts)

    def trained(self, name="m", size="tiny", steps=1):
        """A model trained for a few steps by `deltakit train` (for the model-engine commands)."""
        out = self.path(name)
        subprocess.run([self.deltakit, "train", "--size", size, "--steps", str(steps), "--out", out, "--quiet"],
                       check=True, stdout=subprocess.DEVNULL)
        return out

    def fixture(self, name="m", *flags):
        base, ft = self.path(name + "_base"), self.path(name + "_ft")
        subprocess.run([self.deltakit, "make-fixture", "--out-base", base, "--out-finetuned", ft,
                        *flags], check=True, stdout=subprocess.DEVNULL)
        return base, ft

    def compress(self, base, ft, out):
        subprocess.run([self.deltakit, "compress", "--base", base, "--finetuned", ft, "--out", out],
                       check=True, stdout=subprocess.DEVNULL)
        return out


def rewrite(path, mutate):
    """Re-write a safetensors file after mutate(header, data) -> (header or text, data)."""
    header, data = read_file(path)
    new_header, new_data = mutate(header, data)
    if isinstance(new_header, str):
        write_raw(path, None, new_data, header_text=new_header)
    else:
        write_raw(path, new_header, new_data)


def tensors_in_order(header):
    return sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"])


def compress_args(ctx, base, ft):
    out = ctx.path("out.h5")
    return [ctx.deltakit, "compress", "--base", base, "--finetuned", ft, "--out", out], out


def broken_header(ctx, mutate, must_say, which="ft"):
    """compress after mutate(header, data) broke the base's or fine-tune's model.safetensors."""
    base, ft = ctx.fixture()
    rewrite(os.path.join(ft if which == "ft" else base, "model.safetensors"), mutate)
    argv, out = compress_args(ctx, base, ft)
    return argv, out, "model.safetensors", must_say


def set_field(tensor, field, value):
    def mutate(h, d):
        h[tensor][field] = value
        return h, d
    return mutate


# --- the cases: each returns (argv, output path, file the message must name, words it must say)
@case
def empty_file(ctx):
    base, ft = ctx.fixture()
    open(os.path.join(ft, "model.safetensors"), "wb").close()
    argv, out = compress_args(ctx, base, ft)
    return argv, out, "model.safetensors", "shorter than the 8-byte header length"


@case
def truncated_file(ctx):
    base, ft = ctx.fixture()
    p = os.path.join(ft, "model.safetensors")
    os.truncate(p, os.path.getsize(p) - 1000)
    argv, out = compress_args(ctx, base, ft)
    return argv, out, "model.safetensors", "file truncated"


@case
def header_length_past_end(ctx):
    base, ft = ctx.fixture()
    p = os.path.join(ft, "model.safetensors")
    with open(p, "r+b") as f:
        f.write(struct.pack("<Q", os.path.getsize(p) + 100))
    argv, out = compress_args(ctx, base, ft)
    return argv, out, "model.safetensors", "runs past the end of the file"


@case
def header_length_2_pow_63(ctx):
    base, ft = ctx.fixture()
    with open(os.path.join(base, "model.safetensors"), "r+b") as f:
        f.write(struct.pack("<Q", 1 << 63))
    argv, out = compress_args(ctx, base, ft)
    return argv, out, "model.safetensors", "exceeds the 100 MB cap"


@case
def offsets_past_end(ctx):
    def grow_last(h, d):
        last = tensors_in_order(h)[-1]
        b, e = h[last]["data_offsets"]
        h[last]["shape"][0] += 4  # consistent shape, but the bytes run past the data
        h[last]["data_offsets"] = [b, e + 4 * h[last]["shape"][1] * 2]
        return h, d
    return broken_header(ctx, grow_last, "file truncated")


@case
def overlapping_offsets(ctx):
    def overlap(h, d):
        names = tensors_in_order(h)
        a, b = names[1], names[2]  # make b start inside a, keeping b's own size
        size_b = h[b]["data_offsets"][1] - h[b]["data_offsets"][0]
        start = h[a]["data_offsets"][0] + 2
        h[b]["data_offsets"] = [start, start + size_b]
        return h, d
    return broken_header(ctx, overlap, "overlaps")


@case
def shape_size_mismatch(ctx):
    return broken_header(ctx, set_field("model.norm.weight", "shape", [63]), "data_offsets span")


@case
def negative_shape(ctx):
    return broken_header(ctx, set_field("model.norm.weight", "shape", [-64]), "not a non-negative integer", "base")


@case
def shape_overflow(ctx):
    return broken_header(ctx, set_field("model.norm.weight", "shape", [1 << 32] * 3), "overflows 64 bits", "base")


@case
def unknown_dtype(ctx):
    return broken_header(ctx, set_field("model.norm.weight", "dtype", "Q4_K"), 'unknown dtype "Q4_K"')


@case
def duplicate_names(ctx):
    def dup(h, d):
        text = json.dumps(h)
        entry = json.dumps(h["model.norm.weight"])
        return text[:-1] + ', "model.norm.weight": ' + entry + "}", d
    return broken_header(ctx, dup, "more than once")


@case
def invalid_json(ctx):
    return broken_header(ctx, lambda h, d: ('{"a": [1, 2,, }' + " " * 8, d), "invalid JSON")


@case
def tensor_entry_not_object(ctx):
    return broken_header(ctx, lambda h, d: (dict(h, extra=5), d), "is not a JSON object")


@case
def metadata_not_strings(ctx):
    return broken_header(ctx, lambda h, d: (dict(h, __metadata__={"step": 5}), d), "is not a string")


@case
def bytes_appended(ctx):
    base, ft = ctx.fixture()
    with open(os.path.join(ft, "model.safetensors"), "ab") as f:
        f.write(b"\0" * 16)
    argv, out = compress_args(ctx, base, ft)
    return argv, out, "model.safetensors", "16 unexpected bytes after the last tensor"


SHARD1 = "model-00001-of-00005.safetensors"


def broken_index(ctx, breaks, must_say):
    """compress after breaks(ctx, ft) damaged a sharded fine-tune; the index must be named."""
    base, ft = ctx.fixture("m", "--max-shard-size", "60KB")
    breaks(ctx, ft)
    argv, out = compress_args(ctx, base, ft)
    return argv, out, "model.safetensors.index.json", must_say


def edit_index(ft, edit):
    idx = os.path.join(ft, "model.safetensors.index.json")
    with open(idx) as f:
        j = json.load(f)
    edit(j["weight_map"])
    with open(idx, "w") as f:
        json.dump(j, f)


@case
def index_missing_shard(ctx):
    return broken_index(ctx, lambda ctx, ft: os.remove(os.path.join(ft, "model-00002-of-00005.safetensors")),
                        "does not exist")


@case
def index_path_escapes(ctx):
    def escape(ctx, ft):
        shutil.copy(os.path.join(ft, SHARD1), ctx.path("outside.safetensors"))
        edit_index(ft, lambda wm: wm.update({k: "../outside.safetensors" for k, v in wm.items() if v == SHARD1}))
    return broken_index(ctx, escape, "leaves the checkpoint folder")


@case
def index_symlink_escapes(ctx):
    def link_out(ctx, ft):
        shutil.move(os.path.join(ft, SHARD1), ctx.path("elsewhere.safetensors"))
        os.symlink(ctx.path("elsewhere.safetensors"), os.path.join(ft, SHARD1))
    return broken_index(ctx, link_out, "resolves outside the checkpoint folder")


@case
def index_tensor_unlisted(ctx):
    return broken_index(ctx, lambda ctx, ft: edit_index(ft, lambda wm: wm.pop("model.norm.weight")),
                        "not in the index")


@case
def different_tensor_sets(ctx):
    base, _ = ctx.fixture("a")
    _, ft = ctx.fixture("b", "--tie-embeddings")
    argv, out = compress_args(ctx, base, ft)
    return argv, out, ft, "only in the base: 'lm_head.weight'"


@case
def different_shapes(ctx):
    base, _ = ctx.fixture("a")
    _, ft = ctx.fixture("b", "--size", "small", "--layers", "2")
    argv, out = compress_args(ctx, base, ft)
    return argv, out, ft, "but the base's is"


@case
def different_dtypes(ctx):
    base, _ = ctx.fixture("a")
    _, ft = ctx.fixture("b", "--dtype", "f16")
    argv, out = compress_args(ctx, base, ft)
    return argv, out, ft, "is F16 but the base's is BF16"


@case
def diff_different_shapes(ctx):
    base, _ = ctx.fixture("a")
    _, ft = ctx.fixture("b", "--size", "small", "--layers", "2")
    return [ctx.deltakit, "diff", "--base", base, "--finetuned", ft], None, ft, "but the base's is"


@case
def output_equals_input(ctx):
    base, ft = ctx.fixture()
    target = os.path.join(base, "model.safetensors")
    argv = [ctx.deltakit, "compress", "--base", base, "--finetuned", ft, "--out", target, "--overwrite"]
    return argv, None, target, "overlaps) the input"


@case
def apply_output_is_base(ctx):
    base, ft = ctx.fixture()
    adapter = ctx.compress(base, ft, ctx.path("a.h5"))
    argv = [ctx.deltakit, "apply", "--base", base, "--adapter", adapter, "--out", base, "--overwrite"]
    return argv, None, base, "overlaps) the input"


@case
def apply_output_exists(ctx):
    base, ft = ctx.fixture()
    adapter = ctx.compress(base, ft, ctx.path("a.h5"))
    out = ctx.path("existing")
    os.mkdir(out)
    with open(os.path.join(out, "keep.txt"), "w") as f:
        f.write("precious")
    argv = [ctx.deltakit, "apply", "--base", base, "--adapter", adapter, "--out", out]
    return argv, None, out, "already exists"


@case
def apply_wrong_base(ctx):
    base, ft = ctx.fixture("a")
    other, _ = ctx.fixture("b", "--seed", "2")
    adapter = ctx.compress(base, ft, ctx.path("a.h5"))
    argv = [ctx.deltakit, "apply", "--base", other, "--adapter", adapter, "--out", ctx.path("out")]
    return argv, ctx.path("out"), other, "differs from the one the adapter was made from"


def damaged_adapter(ctx, must_say, edit=None, damage_bytes=None):
    """apply after an adapter (linear layers bitdelta:scale=row, the rest raw) was damaged by
    edit(h5py.File opened r+) and/or damage_bytes(path) on the closed file."""
    import h5py  # only the adapter cases need it
    base, ft = ctx.fixture()
    adapter = ctx.path("a.h5")
    subprocess.run([ctx.deltakit, "compress", "--base", base, "--finetuned", ft, "--recipe", "bitdelta:scale=row",
                    "--only", "*_proj.weight", "--out", adapter], check=True, stdout=subprocess.DEVNULL)
    if edit:
        with h5py.File(adapter, "r+") as f:
            edit(f)
    if damage_bytes:
        damage_bytes(adapter)
    argv = [ctx.deltakit, "apply", "--base", base, "--adapter", adapter, "--out", ctx.path("out")]
    return argv, ctx.path("out"), "a.h5", must_say


LINEAR = "tensors/model.layers.0.self_attn.q_proj.weight"


def replace_scales(make):
    """An edit that swaps LINEAR's bitdelta.scales for make(group, its shape)."""
    def edit(f):
        g = f[LINEAR]
        shape = g["bitdelta.scales"].shape
        del g["bitdelta.scales"]
        make(g, shape)
    return edit


@case
def adapter_truncated(ctx):
    return damaged_adapter(ctx, "damaged or truncated",
                           damage_bytes=lambda path: os.truncate(path, os.path.getsize(path) // 2))


@case
def adapter_flipped_payload_byte(ctx):
    # the byte sits inside a zstd frame; fletcher32 must catch it before zstd sees it
    def flip(path):
        import h5py
        with h5py.File(path, "r") as f:
            info = f[LINEAR + "/bitdelta.signs"].id.get_chunk_info(0)
        at = info.byte_offset + info.size // 2
        with open(path, "r+b") as fh:
            fh.seek(at)
            b = fh.read(1)
            fh.seek(at)
            fh.write(bytes([b[0] ^ 0x10]))
    return damaged_adapter(ctx, "checksum or decompression failed", damage_bytes=flip)


@case
def adapter_missing_dataset(ctx):
    def drop(f):
        del f[LINEAR + "/bitdelta.scales"]
    return damaged_adapter(ctx, "dataset 'bitdelta.scales' is missing", drop)


@case
def adapter_wrong_attribute(ctx):
    def edit(f):
        f[LINEAR].attrs["bitdelta.units"] = 3
    return damaged_adapter(ctx, "'bitdelta.units' does not match the shape", edit)


@case
def adapter_attribute_wrong_type(ctx):
    def edit(f):
        f[LINEAR].attrs["bitdelta.scale"] = 7
    return damaged_adapter(ctx, "'bitdelta.scale' is missing or not a string", edit)


@case
def adapter_bad_recipe_attribute(ctx):
    def edit(f):
        f[LINEAR].attrs["recipe"] = "bitdelta:scale=diagonal"
    return damaged_adapter(ctx, "attribute 'recipe' is not a valid recipe", edit)


@case
def adapter_dataset_wrong_size(ctx):
    import numpy as np
    return damaged_adapter(ctx, "expected", replace_scales(
        lambda g, shape: g.create_dataset("bitdelta.scales", data=np.ones((5, 1), np.float32), chunks=True)))


@case
def adapter_foreign_filter(ctx):
    import numpy as np
    return damaged_adapter(ctx, "zstd + fletcher32", replace_scales(
        lambda g, shape: g.create_dataset("bitdelta.scales", data=np.ones(shape, np.float32), compression="gzip")))


@case
def adapter_soft_link(ctx):
    import h5py

    def link(g, shape):
        g["bitdelta.scales"] = h5py.SoftLink("/" + LINEAR.replace("q_proj", "k_proj") + "/bitdelta.scales")
    return damaged_adapter(ctx, "soft or external link", replace_scales(link))


@case
def adapter_external_link(ctx):
    import h5py

    def link(f):
        f["tensors"]["elsewhere"] = h5py.ExternalLink("/etc/other.h5", "/")
    return damaged_adapter(ctx, "soft or external link", link)


@case
def adapter_wrong_format_version(ctx):
    def edit(f):
        f.attrs["format_version"] = 99
    return damaged_adapter(ctx, "format_version 99 is not supported", edit)


@case
def adapter_unchanged_with_delta(ctx):
    """A tensor marked "unchanged" that still stores a delta: refused, not applied as the base."""
    def edit(f):
        f["tensors/model.norm.weight"].attrs["codec"] = "unchanged"
    return damaged_adapter(ctx, "stores dataset 'raw.delta', which its codec \"unchanged\" does not read", edit)


@case
def adapter_unknown_codec_name(ctx):
    def edit(f):
        f[LINEAR].attrs["codec"] = "zip"
    return damaged_adapter(ctx, "attribute 'codec' \"zip\" does not name its recipe's codecs", edit)


@case
def adapter_root_recipe_not_a_string(ctx):
    def edit(f):
        f.attrs["recipe"] = 5
    return damaged_adapter(ctx, "root attribute 'recipe' is not a string", edit)


@case
def adapter_unknown_root_attribute(ctx):
    def edit(f):
        f.attrs["colour"] = "red"
    return damaged_adapter(ctx, "unknown root attribute 'colour'", edit)


@case
def adapter_chunks_never_written(ctx):
    """A dataset with our filters whose chunks were never written: it would read as zeros."""
    import h5py

    def edit(f):
        old = f[LINEAR + "/bitdelta.scales"]
        old_dcpl, tid, space = old.id.get_create_plist(), old.id.get_type(), old.id.get_space()
        # the same chunking and filters, marked optional: h5py may then create the dataset without
        # the zstd filter registered (our reader checks the filters' ids and values, not the flag)
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk(old_dcpl.get_chunk())
        for i in range(old_dcpl.get_nfilters()):
            code, flags, values, _ = old_dcpl.get_filter(i)
            dcpl.set_filter(code, flags | h5py.h5z.FLAG_OPTIONAL, values)
        del f[LINEAR + "/bitdelta.scales"]
        h5py.h5d.create(f[LINEAR].id, b"bitdelta.scales", tid, space, dcpl=dcpl)
    return damaged_adapter(ctx, "dataset 'bitdelta.scales' stores 0 of its 1 chunks", edit)


def bad_recipe_setup(ctx, *recipe_args):
    """compress with the given recipe options (--recipe/--rules ...)."""
    base, ft = ctx.fixture()
    argv, out = compress_args(ctx, base, ft)
    return argv + list(recipe_args), out


@case
def recipe_invalid(ctx):
    argv, out = bad_recipe_setup(ctx, "--recipe", "bitdelta > dare")
    return argv, out, "bitdelta > dare", "bitdelta cannot come first in a chain"


@case
def split_mb_not_a_number(ctx):
    argv, out = bad_recipe_setup(ctx, "--recipe", "bitdelta", "--split-mb", "half")
    return argv, out, "--split-mb", 'not "half"'


def rules_file(ctx, text):
    path = ctx.path("rules.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


@case
def rules_not_yaml(ctx):
    argv, out = bad_recipe_setup(ctx, "--rules", rules_file(ctx, "rules: [\n"))
    return argv, out, "rules.yaml", "not valid YAML/JSON"


@case
def rules_unknown_key(ctx):
    argv, out = bad_recipe_setup(ctx, "--rules", rules_file(ctx, "rules:\n  - match: '*'\n    recipe: raw\n    colour: red\n"))
    return argv, out, "rules.yaml", "rule 1: unknown key 'colour'"


@case
def rules_bad_recipe(ctx):
    argv, out = bad_recipe_setup(ctx, "--rules", rules_file(ctx, "rules:\n  - match: '*_proj.weight'\n    recipe: zip\n"))
    return argv, out, "rules.yaml", "unknown codec"


def importance_file(ctx, values, name="model.layers.0.self_attn.q_proj.weight"):
    """An act-statistics safetensors file holding one F32 vector."""
    path = ctx.path("act.safetensors")
    data = struct.pack(f"<{len(values)}f", *values)
    write_raw(path, {name: {"dtype": "F32", "shape": [len(values)], "data_offsets": [0, len(data)]}}, data)
    return path


def cherry_act(ctx, path):
    # only q_proj of layer 0 is coded, so the file must hold exactly that tensor's column vector
    return bad_recipe_setup(ctx, "--recipe", f"bitdelta + cherry:importance=act:{path}", "--only",
                            "model.layers.0.self_attn.q_proj.weight")


def q_proj_cols(ctx):
    header, _ = read_file(os.path.join(ctx.fixture("cols")[0], "model.safetensors"))
    return header["model.layers.0.self_attn.q_proj.weight"]["shape"][-1]


@case
def importance_missing_tensor(ctx):
    argv, out = cherry_act(ctx, importance_file(ctx, [1.0] * 4, name="other.weight"))
    return argv, out, "act.safetensors", "importance file has no tensor 'model.layers.0.self_attn.q_proj.weight'"


@case
def importance_wrong_length(ctx):
    argv, out = cherry_act(ctx, importance_file(ctx, [1.0] * (q_proj_cols(ctx) + 1)))
    return argv, out, "act.safetensors", "one per input column"


@case
def importance_negative(ctx):
    argv, out = cherry_act(ctx, importance_file(ctx, [-1.0] * q_proj_cols(ctx)))
    return argv, out, "act.safetensors", "negative or non-finite"


@case
def not_an_adapter(ctx):
    base, ft = ctx.fixture()
    argv = [ctx.deltakit, "apply", "--base", base, "--adapter", os.path.join(ft, "model.safetensors"),
            "--out", ctx.path("out")]
    return argv, ctx.path("out"), "model.safetensors", "not a deltakit adapter"


@case
def log_json_unwritable(ctx):
    base, ft = ctx.fixture()
    argv, out = compress_args(ctx, base, ft)
    return argv + ["--log-json", ctx.path("")], out, ctx.path(""), "cannot open the --log-json file"


# --- the model engine: llama2.c imports, token files, model configs --------------------------

def llama2c_file(ctx, header, floats):
    path = ctx.path("m.bin")
    with open(path, "wb") as f:
        f.write(struct.pack("<7i", *header))
        f.write(struct.pack(f"<{floats}f", *([0.01] * floats)))
    return path


def llama2c_tokenizer(ctx, vocab, truncate=False):
    path = ctx.path("tok.bin")
    body = struct.pack("<i", 4)
    for i in range(vocab):
        piece = bytes([65 + i % 26])
        body += struct.pack("<fi", float(i), len(piece)) + piece
    with open(path, "wb") as f:
        f.write(body[:-3] if truncate else body)
    return path


@case
def llama2c_truncated(ctx):
    # dim 8, hidden 16, 1 layer, 2 heads, 2 kv heads, vocab 32 (tied), seq 4: 936 floats; give 700
    model = llama2c_file(ctx, (8, 16, 1, 2, 2, 32, 4), 700)
    tok = llama2c_tokenizer(ctx, 32)
    out = ctx.path("imported")
    return ([ctx.deltakit, "import-llama2c", model, "--tokenizer", tok, "--out", out], out, model,
            "the header implies")


@case
def llama2c_bad_header(ctx):
    model = llama2c_file(ctx, (8, 16, -1, 2, 2, 32, 4), 10)
    tok = llama2c_tokenizer(ctx, 32)
    out = ctx.path("imported")
    return [ctx.deltakit, "import-llama2c", model, "--tokenizer", tok, "--out", out], out, model, "header field 2"


@case
def llama2c_tokenizer_truncated(ctx):
    model = llama2c_file(ctx, (8, 16, 1, 2, 2, 32, 4), 936)
    tok = llama2c_tokenizer(ctx, 32, truncate=True)
    out = ctx.path("imported")
    return [ctx.deltakit, "import-llama2c", model, "--tokenizer", tok, "--out", out], out, tok, "truncated"


@case
def eval_token_outside_vocab(ctx):
    base, _ = ctx.fixture()
    toks = ctx.path("t.u32")
    with open(toks, "wb") as f:
        f.write(struct.pack("<4I", 1, 2, 99999, 3))
    return [ctx.deltakit, "eval", "--model", base, "--tokens", toks], None, toks, "outside the model's vocabulary"


@case
def eval_token_file_odd_size(ctx):
    base, _ = ctx.fixture()
    toks = ctx.path("t.u32")
    with open(toks, "wb") as f:
        f.write(b"\x01\x00\x00\x00\x02\x00\x00")
    return [ctx.deltakit, "eval", "--model", base, "--tokens", toks], None, toks, "not a multiple of 4"


@case
def model_config_heads(ctx):
    base, _ = ctx.fixture()
    cfg_path = os.path.join(base, "config.json")
    cfg = json.load(open(cfg_path))
    cfg["num_attention_heads"], cfg["num_key_value_heads"] = 4, 3
    json.dump(cfg, open(cfg_path, "w"))
    toks = ctx.path("t.u32")
    with open(toks, "wb") as f:
        f.write(struct.pack("<2I", 1, 2))
    return ([ctx.deltakit, "eval", "--model", base, "--tokens", toks], None, cfg_path,
            "not a multiple of num_key_value_heads")


@case
def model_config_huge_vocab(ctx):
    """vocab_size 2^24 in config.json: refused by the tensors' shapes before the model's memory
    (gigabytes) is allocated. The case runs under a 1 GiB address-space limit to prove it (not in
    the sanitizer build, whose shadow memory needs terabytes of address space)."""
    base, _ = ctx.fixture()
    cfg_path = os.path.join(base, "config.json")
    cfg = json.load(open(cfg_path))
    cfg["vocab_size"] = 1 << 24
    json.dump(cfg, open(cfg_path, "w"))
    toks = ctx.path("t.u32")
    with open(toks, "wb") as f:
        f.write(struct.pack("<2I", 1, 2))
    with open(ctx.deltakit, "rb") as f:  # AddressSanitizer reserves terabytes of shadow: no cap there
        sanitized = b"__asan_init" in f.read()
    cap = [] if sanitized else ["prlimit", "--as=" + str(1 << 30)]
    return (cap + [ctx.deltakit, "eval", "--model", base, "--tokens", toks], None,
            "model.safetensors", "config.json implies")


@case
def train_config_unknown_key(ctx):
    """deltakit train --config: a misspelt key is refused, naming the file and the key (src/eval/train_config)."""
    cfg = ctx.path("train.yml")
    with open(cfg, "w") as f:
        f.write("size: tiny\nmodel: {hidden_size: 32}\ntrain: {steps: 3, batchx: 2}\n")
    out = ctx.path("model_out")
    return [ctx.deltakit, "train", "--config", cfg, "--out", out], out, cfg, 'unknown key "train.batchx"'


# --- merge: its YAML config and its inputs -----------------------------------------------------

def merge_config(ctx, text=None, method="ties", base=None, models=()):
    """merge.yml: `text` as given, or a config of `method` over `base` and (path, parameters) models."""
    if text is None:
        text = f"merge_method: {method}\n" + (f"base_model: {base}\n" if base else "") + "models:\n" + \
            "".join(f"  - {{model: {m}, parameters: {p}}}\n" for m, p in models)
    path = ctx.path("merge.yml")
    with open(path, "w") as f:
        f.write(text)
    return path


TIES = "{weight: 1, density: 0.5}"


def merge_args(ctx, cfg, *flags):
    out = ctx.path("merged")
    return [ctx.deltakit, "merge", cfg, "--out", out, *flags], out


@case
def merge_yaml_invalid(ctx):
    cfg = merge_config(ctx, "merge_method: ties\nmodels: [a, b\n")
    argv, out = merge_args(ctx, cfg)
    return argv, out, cfg, "not valid YAML"


@case
def merge_yaml_ill_typed(ctx):
    """A mapping where the seed's number goes: one line naming the file, not an internal error."""
    base, ft = ctx.fixture()
    cfg = merge_config(ctx, f"merge_method: ties\nbase_model: {base}\nseed: {{a: 1}}\nmodels:\n"
                            f"  - {{model: {ft}, parameters: {TIES}}}\n")
    argv, out = merge_args(ctx, cfg)
    return argv, out, cfg, "a value of the wrong type"


@case
def merge_weight_infinite(ctx):
    """YAML reads .inf as a number; as a weight it would write an all-inf model with exit 0."""
    base, ft = ctx.fixture()
    cfg = merge_config(ctx, base=base, models=[(ft, "{weight: .inf, density: 0.5}")])
    argv, out = merge_args(ctx, cfg)
    return argv, out, cfg, "parameter 'weight' must be finite"


@case
def merge_tokenizer_source_not_a_folder(ctx):
    """A tokenizer_source that is no model folder: refused before the merge (it wrote a model
    without config.json, exit 0)."""
    base, ft = ctx.fixture()
    cfg = merge_config(ctx, f"merge_method: ties\nbase_model: {base}\ntokenizer_source: {ctx.path('nowhere')}\n"
                            f"models:\n  - {{model: {ft}, parameters: {TIES}}}\n")
    argv, out = merge_args(ctx, cfg)
    return argv, out, cfg, "is not a model folder"


@case
def merge_model_missing(ctx):
    base, ft = ctx.fixture()
    gone = ctx.path("no_such_model")
    cfg = merge_config(ctx, base=base, models=[(ft, TIES), (gone, TIES)])
    argv, out = merge_args(ctx, cfg)
    return argv, out, gone, "no such"


@case
def merge_adapter_without_base(ctx):
    base, ft = ctx.fixture()
    adapter = ctx.compress(base, ft, ctx.path("a.h5"))
    cfg = merge_config(ctx, method="linear", models=[(ft, "{weight: 1}"), (adapter, "{weight: 1}")])
    argv, out = merge_args(ctx, cfg)
    return argv, out, adapter, "only be merged with base_model"


@case
def merge_adapter_of_another_base(ctx):
    base, ft = ctx.fixture()
    other_base, other_ft = ctx.fixture("o", "--seed", "9")
    adapter = ctx.compress(other_base, other_ft, ctx.path("a.h5"))
    cfg = merge_config(ctx, method="task_arithmetic", base=base, models=[(adapter, "{weight: 1}")])
    argv, out = merge_args(ctx, cfg)
    return argv, out, adapter, "differs from the one the adapter was made from"


@case
def merge_other_architecture_keeps_output(ctx):
    """A fine-tune with more layers; the existing output (--overwrite) must survive."""
    base, ft = ctx.fixture()
    _, wide = ctx.fixture("w", "--size", "small")
    cfg = merge_config(ctx, base=base, models=[(ft, TIES), (wide, TIES)])
    argv, out = merge_args(ctx, cfg, "--overwrite")
    os.makedirs(out)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(b"an earlier merge")
    return argv, out, wide, "lacks"


@case
def merge_shape_mismatch(ctx):
    base, ft = ctx.fixture()
    wide = ctx.path("wide")
    shutil.copytree(ft, wide)

    def widen(h, d):  # one matrix declared with its dimensions swapped: same bytes, another shape
        name = next(k for k in tensors_in_order(h) if len(h[k]["shape"]) == 2 and h[k]["shape"][0] != h[k]["shape"][1])
        h[name]["shape"] = h[name]["shape"][::-1]
        return h, d
    rewrite(os.path.join(wide, "model.safetensors"), widen)
    cfg = merge_config(ctx, method="task_arithmetic", base=base, models=[(wide, "{weight: 1}")])
    argv, out = merge_args(ctx, cfg)
    return argv, out, wide, "has shape"


@case
def merge_density_out_of_range(ctx):
    base, ft = ctx.fixture()
    cfg = merge_config(ctx, base=base, models=[(ft, "{weight: 1, density: 1.5}")])
    argv, out = merge_args(ctx, cfg)
    return argv, out, cfg, "density must lie in [0, 1]"


@case
def eval_reference_other_shape(ctx):
    a, b = ctx.trained("a"), ctx.trained("b", size="small")
    return [ctx.deltakit, "eval", "--model", a, "--reference", b], None, a, "differ in shape"


@case
def eval_prompt_line_not_a_token(ctx):
    m = ctx.trained()
    lines = ctx.path("prompts.txt")
    with open(lines, "w") as f:
        f.write("256 65 66\n256 65 9999\n")
    return ([ctx.deltakit, "eval", "--model", m, "--reference", m, "--prompts-from", "lines:" + lines], None, lines,
            "line 2")


@case
def importance_calibration_too_short(ctx):
    # a token file shorter than one calibration window; the existing output survives --overwrite
    m = ctx.trained()
    tokens = ctx.path("calib.u32")
    with open(tokens, "wb") as f:
        f.write(struct.pack("<10I", *range(256, 260), *range(6)))
    out = ctx.path("fisher.safetensors")
    with open(out, "wb") as f:
        f.write(b"an earlier result")
    return ([ctx.deltakit, "importance", "--model", m, "--kind", "fisher", "--calibration", "tokens:" + tokens,
             "--seq-len", "16", "--out", out, "--overwrite"], out, tokens, "fewer than one calibration window")


@case
def compress_distill_without_bitdelta(ctx):
    # --distill with a recipe that has no scales to fit: the existing output survives --overwrite
    base, ft = ctx.fixture("distill")
    out = ctx.path("a.h5")
    with open(out, "wb") as f:
        f.write(b"an earlier adapter")
    return ([ctx.deltakit, "compress", "--base", base, "--finetuned", ft, "--recipe", "quant:bits=4", "--out", out,
             "--overwrite", "--distill", "--quiet"], out, out, "nothing to distill")


@case
def plan_budget_too_small(ctx):
    # a budget no choice of the candidates fits: refused before a rules file is written
    base, ft = ctx.trained("base"), ctx.trained("ft", steps=2)
    out = ctx.path("rules.yaml")
    return ([ctx.deltakit, "plan", "--base", base, "--finetuned", ft, "--budget", "2KB", "--mode", "hessian",
             "--candidates", "bitdelta", "--out", out], out, "--budget", "fits")


@case
def riemann_unknown_edit_key(ctx):
    # an edit with a key its kind does not take: refused before any model runs
    m = ctx.trained()
    return ([ctx.deltakit, "riemann", "--base", m, "--finetuned", m, "--edit", "dare:p=0.5,q=2"], None,
            "dare:p=0.5,q=2", "unknown key")


@case
def riemann_model_edit_not_a_model(ctx):
    # a model edit whose folder holds no checkpoint: refused, naming it, before any model runs
    m = ctx.trained()
    missing = ctx.path("no-such-model")
    return ([ctx.deltakit, "riemann", "--base", m, "--finetuned", m, "--edit", f"model:path={missing},label=x"],
            None, missing, "not a model folder")


@case
def riemann_model_edit_other_shapes(ctx):
    # a model edit from a checkpoint of other shapes: one line naming its folder
    m, other = ctx.trained("a"), ctx.trained("b", size="small")
    return ([ctx.deltakit, "riemann", "--base", m, "--finetuned", m, "--edit", f"model:path={other}"], None, other,
            "other shapes")


# --- hostile files: named pipes, endless files, headers built to exhaust time or memory ----------

def fifo(path):
    if os.path.lexists(path):
        os.remove(path)
    os.mkfifo(path)
    return path


@case
def fifo_as_shard(ctx):
    """A named pipe where a shard goes: refused at once, never waited on."""
    base, ft = ctx.fixture()
    fifo(os.path.join(ft, "model.safetensors"))
    argv, out = compress_args(ctx, base, ft)
    return argv, out, "model.safetensors", "not a regular file"


@case
def fifo_as_index(ctx):
    base, ft = ctx.fixture("s", "--max-shard-size", "20KB")
    fifo(os.path.join(ft, "model.safetensors.index.json"))
    argv, out = compress_args(ctx, base, ft)
    return argv, out, "model.safetensors.index.json", "not a regular file"


@case
def fifo_as_rules(ctx):
    argv, out = bad_recipe_setup(ctx, "--rules", fifo(ctx.path("rules.yaml")))
    return argv, out, "rules.yaml", "not a regular file"


@case
def fifo_as_merge_config(ctx):
    argv, out = merge_args(ctx, fifo(ctx.path("merge.yml")))
    return argv, out, "merge.yml", "not a regular file"


@case
def fifo_as_adapter(ctx):
    base, _ = ctx.fixture()
    adapter = fifo(ctx.path("a.h5"))
    out = ctx.path("out")
    return [ctx.deltakit, "apply", "--base", base, "--adapter", adapter, "--out", out], out, "a.h5", \
        "not a regular file"


@case
def endless_token_file(ctx):
    """/dev/zero as a token file: refused before a byte is read, not read until memory runs out."""
    base, _ = ctx.fixture()
    return [ctx.deltakit, "eval", "--model", base, "--tokens", "/dev/zero"], None, "/dev/zero", \
        "not a regular file"


@case
def rules_too_large_for_adapter(ctx):
    """Rules whose copy cannot fit the adapter's attribute: refused before the compress runs."""
    rules = "rules:\n" + "".join(f"  - match: 'model.layers.{i}.some_long_module_name_*.weight'\n"
                                 f"    recipe: 'dare:p=0.5'\n" for i in range(1200))
    argv, out = bad_recipe_setup(ctx, "--rules", rules_file(ctx, rules))
    return argv, out, "rules.yaml", "-byte limit"


@case
def adapter_out_is_a_folder(ctx):
    """--overwrite on a folder where the adapter file goes: refused before the compress runs."""
    base, ft = ctx.fixture()
    out = ctx.path("existing")
    os.mkdir(out)
    with open(os.path.join(out, "keep.txt"), "w") as f:
        f.write("precious")
    argv = [ctx.deltakit, "compress", "--base", base, "--finetuned", ft, "--out", out, "--overwrite"]
    return argv, out, out, "output is an existing folder"


@case
def recipe_with_newline(ctx):
    """A message echoing a recipe with a newline stays one line."""
    argv, out = bad_recipe_setup(ctx, "--recipe", "dare:p=0.5\nfoo")
    return argv, out, "dare:p=0.5\\nfoo", "is not a number"


@case
def max_shard_size_overflow(ctx):
    base, ft = ctx.fixture()
    adapter = ctx.compress(base, ft, ctx.path("a.h5"))
    out = ctx.path("out")
    return [ctx.deltakit, "apply", "--base", base, "--adapter", adapter, "--out", out, "--max-shard-size",
            "1e32GB"], out, "1e32GB", "outside 1 byte .. 8 EB"


@case
def only_not_utf8(ctx):
    """--only with bytes that are not UTF-8: refused at once (it can match no tensor name, and the
    adapter could not store it), not an internal error."""
    argv, out = bad_recipe_setup(ctx, "--recipe", "dare:p=0.5", "--only", b"\xff*".decode("utf-8", "surrogateescape"))
    return argv, out, "--only", "not valid UTF-8"


def header_only_file(ctx, header_text):
    base, ft = ctx.fixture()
    write_raw(os.path.join(ft, "model.safetensors"), None, b"", header_text=header_text)
    argv, out = compress_args(ctx, base, ft)
    return argv, out


@case
def header_100k_tensors(ctx):
    """100,000 entries then one bad dtype: the whole header is parsed in well under the timeout
    (an insertion-ordered JSON map made this quadratic: ~40 s)."""
    entries = ",".join(f'"t{i:06d}":{{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}' for i in range(100000))
    argv, out = header_only_file(ctx, '{' + entries + ',"zzz":{"dtype":"F99","shape":[0],"data_offsets":[0,0]}}')
    return argv, out, "model.safetensors", 'unknown dtype "F99"'


@case
def header_deeply_nested(ctx):
    argv, out = header_only_file(ctx, '{"a":' + "[" * 5000 + "]" * 5000 + "}")
    return argv, out, "model.safetensors", "nesting deeper than"


@case
def header_huge_array(ctx):
    """A shape of a million dimensions: refused while parsing, not held as a million JSON nodes."""
    argv, out = header_only_file(ctx, '{"a":{"dtype":"F32","shape":[' + ",".join(["1"] * 1000000) +
                                 '],"data_offsets":[0,4]}}')
    return argv, out, "model.safetensors", "an array longer than 64"


def run_case(deltakit, name):
    work = tempfile.mkdtemp(prefix="deltakit-bad-")
    try:
        argv, out, must_name, must_say = CASES[name](Ctx(deltakit, work))
        before = snapshot(out) if out and os.path.exists(out) else None
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            return fail(name, "hung for 60 s")
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        if p.returncode not in (1, 2):
            return fail(name, f"exit code {p.returncode} (want 1 or 2); stderr: {p.stderr!r}")
        if len(lines) != 1:
            return fail(name, f"want exactly one stderr line, got {len(lines)}: {p.stderr!r}")
        if must_name not in lines[0] or must_say not in lines[0]:
            return fail(name, f"message {lines[0]!r} should name {must_name!r} and say {must_say!r}")
        if out:
            after = snapshot(out) if os.path.exists(out) else None
            if after != before:
                return fail(name, f"output {out} was created or changed")
        # temporaries and job journals (".out.h5.deltakit-compress", "...-apply") alike
        leftovers = [f for f in os.listdir(work) if ".deltakit-" in f]
        if leftovers:
            return fail(name, f"temporary files left behind: {leftovers}")
        print(f"ok {name}: {lines[0]}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def snapshot(path):
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return f.read()
    return sorted((r, tuple(sorted(f))) for r, _, f in os.walk(path))


def fail(name, why):
    print(f"FAIL {name}: {why}")
    return 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit")
    ap.add_argument("--case")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    if a.list:
        print("\n".join(CASES))
        return 0
    return run_case(a.deltakit, a.case)


if __name__ == "__main__":
    sys.exit(main())

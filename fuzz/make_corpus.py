#!/usr/bin/env python3
"""Writes the fuzz seed corpora (fuzz/corpus/<target>/): small valid inputs, stdlib only.

Run from anywhere: python3 fuzz/make_corpus.py. The output is committed; rerun
only to change the seeds.
"""
import json
import os
import struct
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- safetensors: 8-byte little-endian header length, JSON header, data.
DTYPE_FMT = {"F32": "f", "F64": "d", "I64": "q", "I32": "i", "I16": "h", "I8": "b", "U8": "B", "BOOL": "?"}


def safetensors(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header, offset, blobs = {}, 0, []
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-(len(text) + 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def pack(fmt, values):
    return struct.pack("<%d%s" % (len(values), fmt), *values)


put("safetensors", "f32_2x3", safetensors([("w", "F32", [2, 3], pack("f", [0, 1, 2, 3, 4, 5]))]))
put("safetensors", "mixed_dtypes", safetensors([
    ("a.f16", "F16", [2], pack("H", [0x3C00, 0xBC00])),
    ("b.bf16", "BF16", [1, 1], pack("H", [0x4040])),
    ("c.f64", "F64", [1], pack("d", [2.5])),
    ("d.i64", "I64", [2], pack("q", [981, -1])),
    ("e.i32", "I32", [1], pack("i", [7])),
    ("f.i16", "I16", [1], pack("h", [-3])),
    ("g.i8", "I8", [2], pack("b", [-1, 1])),
    ("h.u8", "U8", [3], pack("B", [0, 128, 255])),
    ("i.bool", "BOOL", [2], pack("?", [True, False])),
], metadata={"format": "pt"}))
put("safetensors", "empty_and_scalar", safetensors([
    ("empty", "F32", [0, 4], b""), ("scalar", "F32", [], pack("f", [1.5]))]))
put("safetensors", "unaligned_f32", safetensors([
    ("byte", "U8", [1], b"\x01"), ("w", "F32", [2], pack("f", [3, 4]))], pad=False))
put("safetensors", "header_only", safetensors([]))

# ---- PyTorch zip checkpoints: data.pkl written opcode by opcode (protocol 2).


class Pickle:
    def __init__(self):
        self.b = bytearray(b"\x80\x02")

    def op(self, *codes):
        self.b += bytes(codes)
        return self

    def s(self, text):
        raw = text.encode()
        self.b += b"X" + struct.pack("<I", len(raw)) + raw
        return self

    def i(self, v):
        if 0 <= v < 256:
            self.b += b"K" + bytes([v])
        elif -2**31 <= v < 2**31:
            self.b += b"J" + struct.pack("<i", v)
        else:
            self.b += b"\x8a\x08" + struct.pack("<q", v)
        return self

    def glob(self, module, name):
        self.b += b"c" + module.encode() + b"\n" + name.encode() + b"\n"
        return self

    def tup(self, values):
        self.op(ord("("))
        for v in values:
            self.i(v)
        return self.op(ord("t"))

    def ordered_dict(self):
        return self.glob("collections", "OrderedDict").op(ord(")"), ord("R"))

    def tensor(self, storage_cls, key, numel, offset, size, stride):
        self.glob("torch._utils", "_rebuild_tensor_v2").op(ord("("))
        self.op(ord("(")).s("storage").glob("torch", storage_cls).s(key).s("cpu").i(numel).op(ord("t"), ord("Q"))
        self.i(offset).tup(size).tup(stride).op(0x89).ordered_dict().op(ord("t"))
        return self.op(ord("R"))


def state_dict_pickle():
    p = Pickle()
    p.ordered_dict().op(ord("q"), 0).op(ord("("))
    p.s("conv.weight").tensor("FloatStorage", "0", 6, 0, [2, 3], [3, 1])
    p.s("conv.view").tensor("FloatStorage", "0", 6, 1, [2, 2], [1, 3])
    p.s("half").tensor("HalfStorage", "1", 2, 0, [2], [1])
    p.s("expanded").tensor("FloatStorage", "0", 6, 2, [2, 3], [0, 1])
    p.s("count").tensor("LongStorage", "2", 1, 0, [], [])
    # nn.Parameter: _rebuild_parameter(tensor, requires_grad, hooks), memoized and fetched back.
    p.s("param").glob("torch._utils", "_rebuild_parameter")
    p.tensor("BFloat16Storage", "3", 1, 0, [1, 1], [1, 1]).op(0x88).ordered_dict().op(0x87, ord("R"))
    p.op(ord("q"), 1).op(ord("u"))
    # state_dict._metadata arrives as BUILD state.
    p.op(ord("}")).s("_metadata").ordered_dict().op(ord("s"), ord("b"), ord("."))
    storages = {
        "0": pack("f", [0, 1, 2, 3, 4, 5]),
        "1": pack("H", [0x3C00, 0xBC00]),
        "2": pack("q", [42]),
        "3": pack("H", [0x4040]),
    }
    return bytes(p.b), storages


def checkpoint(pkl, storages, compression):
    import io
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", "little")
        for key, raw in storages.items():
            z.writestr("archive/data/" + key, raw)
        z.writestr("archive/version", "3\n")
    return buf.getvalue()


pkl, storages = state_dict_pickle()
put("torch_pickle", "state_dict.pkl", pkl)
put("torch_checkpoint", "stored.pth", checkpoint(pkl, storages, zipfile.ZIP_STORED))
put("torch_checkpoint", "deflated.pth", checkpoint(pkl, storages, zipfile.ZIP_DEFLATED))
one = Pickle().ordered_dict().op(ord("(")).s("w").tensor("FloatStorage", "0", 4, 0, [4], [1]).op(ord("u"), ord("."))
put("torch_pickle", "one_tensor.pkl", bytes(one.b))
put("torch_checkpoint", "one_tensor.pth", checkpoint(bytes(one.b), {"0": pack("f", [1, 2, 3, 4])}, zipfile.ZIP_STORED))
# Protocol 4 style: FRAME, SHORT_BINUNICODE, STACK_GLOBAL, MEMOIZE, BINGET.
p4 = bytearray(b"\x80\x04\x95" + struct.pack("<Q", 0))
p4 += b"\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94\x93\x94)R\x94h\x03."
put("torch_pickle", "protocol4.pkl", bytes(p4))

# ---- config.json: a diffusers-style config exercising every getter's types.
put("model_config", "unet_like.json", json.dumps({
    "_class_name": "UNet2DConditionModel",
    "sample_size": 32,
    "in_channels": 7,
    "block_out_channels": [32, 64],
    "layers_per_block": 2,
    "attention_head_dim": [2, 4],
    "only_cross_attention": [False, True],
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "norm_eps": 1e-5,
    "scaling_factor": 0.08333,
    "flip_sin_to_cos": True,
    "class_embed_type": None,
    "num_class_embeds": 1000.0,
    "betas": [0.1, 2, -3e300],
}, indent=1).encode())
put("model_config", "scalars.json", b'{"a":-9223372036854775808,"b":18446744073709551615,"c":1e300,'
                                    b'"d":"\\u00e9","e":[],"f":{"g":[1,[2]]},"h":4.5}')

# ---- y4m (for the y4m reader): small streams of every chroma layout, odd
# sizes, frame parameters, full range, and a last frame cut short.
def y4m_chroma_bytes(w, h, chroma):
    if chroma == b"mono":
        return 0
    sub_x, sub_y = {b"420jpeg": (2, 2), b"420mpeg2": (2, 2), b"420paldv": (2, 2), b"420": (2, 2),
                    b"422": (2, 1), b"411": (4, 1), b"444": (1, 1)}[chroma]
    return 2 * (-(-w // sub_x)) * (-(-h // sub_y))


def y4m(w, h, frames, extra=b"C420jpeg", frame_line=b"FRAME", cut=0):
    head = b"YUV4MPEG2 W%d H%d F30000:1001 Ip A1:1 %s\n" % (w, h, extra)
    chroma = y4m_chroma_bytes(w, h, extra.split()[0][1:])
    body = b""
    for k in range(frames):
        body += frame_line + b"\n" + bytes((16 + k + i) % 256 for i in range(w * h + chroma))
    return head + body[:len(body) - cut]


put("y4m", "c420_4x2_2frames.y4m", y4m(4, 2, 2))
put("y4m", "c444_2x2.y4m", y4m(2, 2, 1, b"C444 XYSCSS=444"))
put("y4m", "c420mpeg2_5x3.y4m", y4m(5, 3, 2, b"C420mpeg2 XCOLORRANGE=FULL"))
put("y4m", "c420paldv_3x5_params.y4m", y4m(3, 5, 1, b"C420paldv It", frame_line=b"FRAME Ixyz XFOO=1"))
put("y4m", "c422_6x2.y4m", y4m(6, 2, 1, b"C422 Ib"))
put("y4m", "c411_9x1.y4m", y4m(9, 1, 2, b"C411 Im"))
put("y4m", "mono_3x3.y4m", y4m(3, 3, 2, b"Cmono F0:0"))
put("y4m", "c420_7x7_cut.y4m", y4m(7, 7, 2, b"C420", cut=5))

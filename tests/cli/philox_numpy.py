"""The counter RNG of src/core/philox.h in a few lines of numpy, as the README promises: it must
reproduce the C++ stream (the same words are asserted in tests/unit/philox_test.cpp) and a DARE
drop mask from (seed, tensor name, element index) alone."""
import numpy as np

M0, M1, W0, W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85

def philox4x32_10(c, k):  # c: (4, n) uint64 holding uint32 values, k: (k0, k1)
    c = [x.astype(np.uint64) for x in c]
    k0, k1 = np.uint64(k[0]), np.uint64(k[1])
    mask = np.uint64(0xFFFFFFFF)
    for r in range(10):
        if r:
            k0, k1 = (k0 + np.uint64(W0)) & mask, (k1 + np.uint64(W1)) & mask
        p0, p1 = np.uint64(M0) * c[0], np.uint64(M1) * c[2]
        c = [(p1 >> np.uint64(32)) ^ c[1] ^ k0, p1 & mask, (p0 >> np.uint64(32)) ^ c[3] ^ k1, p0 & mask]
    return c

def fnv1a64(s):
    h = 0xcbf29ce484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h

def tensor_words(seed, name, n):
    h, i = fnv1a64(name), np.arange(n, dtype=np.uint64)
    blk = i // np.uint64(4)
    c = [blk & np.uint64(0xFFFFFFFF), blk >> np.uint64(32),
         np.full(n, h & 0xFFFFFFFF, np.uint64), np.full(n, h >> 32, np.uint64)]
    out = philox4x32_10(c, (seed & 0xFFFFFFFF, seed >> 32))
    return np.choose((i % np.uint64(4)).astype(np.int64), out).astype(np.uint32)

def dare_drop_mask(seed, name, n, p):  # True = dropped
    return tensor_words(seed, name, n).astype(np.uint64) < np.uint64(int(np.floor(p * 2**32)) if p < 1 else 2**32)

if __name__ == "__main__":
    one = lambda c, k: [int(x[0]) for x in philox4x32_10([np.array([v], np.uint64) for v in c], k)]
    assert one([0, 0, 0, 0], [0, 0]) == [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
    assert one([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]) == \
        [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
    assert [int(x) for x in tensor_words(42, "t", 6)] == \
        [0xc72cce0d, 0x0f0f744a, 0x74f246b2, 0x8169ac02, 0xafe56328, 0xfba72a50]
    m = dare_drop_mask(7, "model.layers.0.mlp.up_proj.weight", 200_000, 0.9)
    assert abs(m.mean() - 0.9) < 4 * (0.9 * 0.1 / 200_000) ** 0.5
    print("ok: numpy reproduces the deltakit counter RNG")

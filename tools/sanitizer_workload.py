"""A small CUDA workload for compute-sanitizer (memcheck, racecheck): every featperm CUDA op on
odd shapes, offsets and dtypes, checked against the CPU result so a silent bad write also fails."""

import torch

import featperm


def check_shuffle_bits():
    for dtype in (torch.uint8, torch.float16, torch.float32, torch.float64):
        bits = featperm.word_bits(dtype)
        for n in (1, 7, 33, 1000, 4099):
            base = torch.randint(-100, 100, (n + 9,), dtype=torch.int64).to(featperm.integer_view_dtype(dtype)).view(dtype)
            for offset in (0, 1, 3):
                x = base[offset:offset + n]
                key = featperm.BitKey.generate(bits)
                got = featperm.shuffle_bits(x.cuda(), key).cpu()
                want = featperm.shuffle_bits(x, key)
                assert torch.equal(got.view(featperm.integer_view_dtype(dtype)), want.view(featperm.integer_view_dtype(dtype)))
        keys = featperm.BitKey.generate(bits, samples=5)
        x = torch.randint(0, 100, (5, 37), dtype=torch.int64).to(featperm.integer_view_dtype(dtype)).view(dtype)
        y = x.cuda()
        featperm.unshuffle_bits_(y, keys)
        assert torch.equal(y.cpu().view(featperm.integer_view_dtype(dtype)),
                           featperm.unshuffle_bits(x, keys).view(featperm.integer_view_dtype(dtype)))


def check_block_shuffle():
    for (n, c, h, w, m) in ((2, 3, 4, 6, 2), (1, 64, 8, 8, 4), (1, 2048, 4, 4, 4), (3, 5, 6, 6, 3)):
        key = featperm.BlockKey.generate(channels=c, block_size=m)
        x = torch.randn(n, c, h, w)
        for fmt in (torch.contiguous_format, torch.channels_last):
            xc = x.to(memory_format=fmt)
            got = featperm.block_shuffle(xc.cuda(), key)
            assert torch.equal(got.cpu(), featperm.block_shuffle(xc, key))
            y = got.clone()
            featperm.block_unshuffle_(y, key)
            assert torch.equal(y.cpu(), xc)


def check_chacha20_poly1305():
    key, nonce = bytes(range(32)), bytes(range(12))
    for n in (0, 1, 63, 64, 65, 1000, 4099, 1 << 16):
        data = torch.randint(0, 256, (n,), dtype=torch.uint8)
        ct_gpu, tag_gpu = featperm.crypto.aead_encrypt(data.cuda(), key, nonce, aad=b"x")
        ct_cpu, tag_cpu = featperm.crypto.aead_encrypt(data, key, nonce, aad=b"x")
        assert torch.equal(ct_gpu.cpu(), ct_cpu) and bytes(tag_gpu) == bytes(tag_cpu)
        back = featperm.crypto.aead_decrypt(ct_gpu, tag_gpu, key, nonce, aad=b"x")
        assert torch.equal(back.cpu(), data)


CHECKS = [check_shuffle_bits, check_block_shuffle, check_chacha20_poly1305]

if __name__ == "__main__":
    import sys
    selected = [c for c in CHECKS if c.__name__ in sys.argv[1:]] or CHECKS
    for check in selected:
        check()
        print(check.__name__, "ok")
    torch.cuda.synchronize()

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


CHECKS = [check_shuffle_bits]

if __name__ == "__main__":
    for check in CHECKS:
        check()
        print(check.__name__, "ok")
    torch.cuda.synchronize()

import torch, featperm
x = torch.randn(16 << 20, device="cuda")
key = featperm.BitKey.generate(32)
for _ in range(3):
    y = featperm.shuffle_bits(x, key); z = x.clone()
torch.cuda.synchronize()
torch.cuda.nvtx.range_push("probe")
y = featperm.shuffle_bits(x, key)
z = x.clone()
torch.cuda.synchronize()

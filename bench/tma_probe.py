"""Which tensor-descriptor (TMA) uses Triton runs on this GPU, each in a process of its own (a fault is sticky):
a 2-D load at column offsets from -8 (left of the start, a multiple of 8 samples: 16 bytes in bf16), from -3 (left,
not a multiple), from +5 (inside, not a multiple), a 3-D load reshaped to 2-D, and a 3-D store of a reshaped tile. Prints one line a probe: ok, wrong or its error.

    python bench/tma_probe.py
"""
import subprocess
import sys

PROBES = ("load-aligned", "load-unaligned", "load-ahead", "load-3d", "store-3d")


def probe(name: str) -> str:
    import torch
    import triton
    import triton.language as tl
    from triton.tools.tensor_descriptor import TensorDescriptor

    @triton.jit
    def copy2d(x_desc, y_ptr, shift, length, BLOCK_R: tl.constexpr, BLOCK_T: tl.constexpr):
        t0 = tl.program_id(0) * BLOCK_T
        tile = x_desc.load([0, t0 - shift])
        r = tl.arange(0, BLOCK_R)[:, None]
        t = t0 + tl.arange(0, BLOCK_T)[None, :]
        tl.store(y_ptr + r * length + t, tile, mask=t < length)

    @triton.jit
    def copy3d(x_desc, y_desc, y_ptr, length, STORE: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_T: tl.constexpr):
        t0 = tl.program_id(0) * BLOCK_T
        tile = x_desc.load([0, 0, t0]).reshape(BLOCK_R, BLOCK_T)
        if STORE:
            y_desc.store([0, 0, t0], tile.reshape(1, BLOCK_R, BLOCK_T))
        else:
            r = tl.arange(0, BLOCK_R)[:, None]
            t = t0 + tl.arange(0, BLOCK_T)[None, :]
            tl.store(y_ptr + r * length + t, tile, mask=t < length)

    length, rows = 1000, 32
    x = torch.randn(rows, length, device="cuda", dtype=torch.bfloat16)
    y = torch.zeros_like(x)
    grid = (triton.cdiv(length, 256),)
    if name.startswith("load-") and name != "load-3d":
        shift = {"load-aligned": 8, "load-unaligned": 3, "load-ahead": -5}[name]
        copy2d[grid](TensorDescriptor(x, [rows, length], [length, 1], [rows, 256]), y, shift, length,
                     BLOCK_R=rows, BLOCK_T=256)
        want = torch.zeros_like(x)
        if shift >= 0:
            want[:, shift:] = x[:, : length - shift]
        else:
            want[:, : length + shift] = x[:, -shift:]
    else:
        x3, y3 = x.view(1, rows, length), y.view(1, rows, length)
        copy3d[grid](TensorDescriptor(x3, [1, rows, length], [rows * length, length, 1], [1, rows, 256]),
                     TensorDescriptor(y3, [1, rows, length], [rows * length, length, 1], [1, rows, 256]), y, length,
                     STORE=name == "store-3d", BLOCK_R=rows, BLOCK_T=256)
        want = x
    torch.cuda.synchronize()
    return "ok" if torch.equal(y, want) else f"wrong ({int((y != want).sum())} of {y.numel()} differ)"


def main() -> None:
    if len(sys.argv) > 1:
        print(probe(sys.argv[1]))
        return
    for name in PROBES:
        done = subprocess.run([sys.executable, __file__, name], capture_output=True, text=True, timeout=120,
                              check=False)
        said = done.stdout.strip() or (done.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"{name}: {said}", flush=True)


if __name__ == "__main__":
    main()

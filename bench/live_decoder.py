"""A live frame's decode: the model's VAE vs a fast decoder (TAESD, ``serve --live-decoder``).

Both decoders are built with random weights in the real architectures (SD1.5's ``AutoencoderKL``
and TAESD's ``AutoencoderTiny`` at their default configs: a decode's cost depends on the shapes, not
on the weights), plus tiny-random's pair that the tests use. Each decodes the same latents through
the daemon's own decode path (``DiffusionEngine._decode``: NaN guard, uint8 picture), interleaved
round by round, at ``--side`` pixels square. Prints medians and the ratio.

Run: ``python bench/live_decoder.py [--side 512] [--rounds 5]`` (prints the machine's load average).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--side", type=int, default=512, help="picture side in pixels (a multiple of 8)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import torch
    from diffusers import AutoencoderKL, AutoencoderTiny

    from underpaint.engines.diffusion import DiffusionEngine, tiny

    print(f"load average before: {' '.join(f'{v:.1f}' for v in os.getloadavg())} ({os.cpu_count()} CPUs)")
    torch.manual_seed(0)
    sd_vae: Any = AutoencoderKL(
        block_out_channels=[128, 256, 512, 512],
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        latent_channels=4,
        layers_per_block=2,
        scaling_factor=0.18215,
    )
    taesd: Any = AutoencoderTiny()
    tiny_pipe: Any = tiny.build_sd15(tiny.write_tokenizer(_scratch()))
    pairs: dict[str, tuple[Any, Any]] = {
        "SD1.5 architecture": (sd_vae.eval(), taesd.eval()),
        "tiny-random": (tiny_pipe.vae.eval(), tiny.build_live_decoder()),
    }
    engine = DiffusionEngine(sources=["tiny-random"], device="cpu")
    latents = torch.randn(1, 4, args.side // 8, args.side // 8)
    times: dict[tuple[str, str], list[float]] = {(name, which): [] for name in pairs for which in ("vae", "taesd")}
    for vae, fast in pairs.values():  # warm-up: first calls allocate
        engine._decode(None, latents, vae)
        engine._decode(None, latents, fast)
    for _ in range(args.rounds):
        for name, (vae, fast) in pairs.items():
            for which, decoder in (("vae", vae), ("taesd", fast)):
                started = time.perf_counter()
                picture = engine._decode(None, latents, decoder)
                times[(name, which)].append((time.perf_counter() - started) * 1000)
                assert picture.shape == (args.side, args.side, 3), picture.shape
    threads = torch.get_num_threads()
    print(f"\ndecode of one {args.side}x{args.side} live frame on the CPU ({threads} threads), medians:")
    for name in pairs:
        full, fast = statistics.median(times[(name, "vae")]), statistics.median(times[(name, "taesd")])
        print(f"  {name:18s}: VAE {full:8.1f} ms, TAESD {fast:7.1f} ms = {fast / full:6.1%} of the VAE's time")
    print(f"\nload average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


def _scratch() -> Any:
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp(prefix="underpaint-bench-decoder-")) / "tok"


if __name__ == "__main__":
    main()

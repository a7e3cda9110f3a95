"""LinearChainCRF vs pytorch-crf (`torchcrf.CRF`, batch_first) on the CPU, measured in the same run.

Goals: NLL forward+backward >= 2x faster than pytorch-crf at B=32; Viterbi >= 5x faster than
pytorch-crf's `decode`; marginals <= 1.5x the cost of our own NLL forward.

    python benchmarks/bench_crf.py [--threads N] [--repeats R]
"""

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from crf_clner import LinearChainCRF  # noqa: E402

try:
    from torchcrf import CRF
except ImportError:  # pragma: no cover
    sys.exit("pytorch-crf is needed as the peer: pip install pytorch-crf==0.7.2")


def best_time(fn, repeats):
    """Best wall time of `repeats` calls after one warm-up (the minimum is the least noisy estimate)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tags", type=int, default=13)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    c = args.tags
    ref = CRF(c, batch_first=True)
    ours = LinearChainCRF(c)
    with torch.no_grad():
        ours.start_transitions.copy_(ref.start_transitions)
        ours.end_transitions.copy_(ref.end_transitions)
        ours.transitions.copy_(ref.transitions)

    print(f"CPU, {args.threads} threads, {c} tags; times in ms (best of {args.repeats}); ratio = pytorch-crf / ours")
    header = (
        f"{'B':>3} {'T':>4} | {'nll f+b ours':>12} {'torchcrf':>9} {'ratio':>6} | {'viterbi ours':>12} "
        f"{'torchcrf':>9} {'ratio':>6} | {'nll fwd':>8} {'marginals':>9} {'marg/fwd':>8}"
    )
    print(header)
    print("-" * len(header))
    for bsz in (1, 16, 32):
        for seq_len in (20, 128, 512):
            emissions = torch.randn(bsz, seq_len, c)
            tags = torch.randint(0, c, (bsz, seq_len))
            lengths = torch.randint(max(1, seq_len // 2), seq_len + 1, (bsz,))
            lengths[0] = seq_len
            mask = torch.arange(seq_len)[None] < lengths[:, None]
            reps = args.repeats if seq_len < 512 or bsz < 32 else max(2, args.repeats // 2)

            def ours_fb():
                e = emissions.clone().requires_grad_(True)
                ours.nll(e, tags, mask).sum().backward()

            def ref_fb():
                e = emissions.clone().requires_grad_(True)
                (-ref(e, tags, mask, reduction="sum")).backward()

            def ours_fwd():
                with torch.no_grad():
                    ours.nll(emissions, tags, mask)

            def ours_marg():
                with torch.no_grad():
                    ours.marginals(emissions, mask)

            t_fb, t_fb_ref = best_time(ours_fb, reps), best_time(ref_fb, reps)
            t_vit = best_time(lambda: ours.viterbi_decode(emissions, mask), reps)
            t_vit_ref = best_time(lambda: ref.decode(emissions, mask), reps)
            t_fwd, t_marg = best_time(ours_fwd, reps), best_time(ours_marg, reps)
            print(
                f"{bsz:>3} {seq_len:>4} | {t_fb * 1e3:>12.2f} {t_fb_ref * 1e3:>9.2f} {t_fb_ref / t_fb:>5.2f}x | "
                f"{t_vit * 1e3:>12.2f} {t_vit_ref * 1e3:>9.2f} {t_vit_ref / t_vit:>5.2f}x | "
                f"{t_fwd * 1e3:>8.2f} {t_marg * 1e3:>9.2f} {t_marg / t_fwd:>7.2f}x"
            )


if __name__ == "__main__":
    main()

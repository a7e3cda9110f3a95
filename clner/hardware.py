"""What the CPU can do in bf16: read from the CPU's flags (torch 2.13 has no public probe), so that no default turns
on bf16 where it is emulated (an AVX2-only CPU runs bf16 matmuls about 30x slower than float32)."""

from __future__ import annotations

from typing import NamedTuple

import torch

from clner.errors import CLNERUsageError


class CPUPrecision(NamedTuple):
    """What this CPU can do in bf16: `native` when it has bf16 instructions (AVX512-BF16 or AMX on x86, BF16 on
    Arm); elsewhere bf16 matmuls are emulated, about 30x slower than float32 (200x at some shapes)."""

    native: bool
    description: str  # e.g. "AMD EPYC (torch CPU capability AVX2; no AVX512-BF16, no AMX)"


def _cpu_info() -> tuple[str, set[str]]:
    """The CPU's model name and feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return "", set()
    name, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model") and not name:
            name = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return name, flags


def cpu_bf16_support() -> CPUPrecision:
    """Whether bf16 is native on this CPU, and a one-line description of the CPU for logs and benchmark reports.

    Reads the CPU's flags (Linux), falling back to oneDNN's own bf16 check where there are none. The study, the
    benchmarks and `clner-train` use bf16 on a CPU only where this says native."""
    import platform

    capability = torch.backends.cpu.get_cpu_capability()
    name, flags = _cpu_info()
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    if flags:
        has = {"AVX512-BF16": "avx512_bf16" in flags, "AMX": "amx_bf16" in flags, "BF16": "bf16" in flags}
        if platform.machine().lower() in ("x86_64", "amd64", "i686", "x86"):
            has.pop("BF16")
        else:
            has = {"BF16": has["BF16"]}
        native = any(has.values())
        parts = [f"torch CPU capability {capability}"] + [k if v else f"no {k}" for k, v in has.items()]
    else:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        parts = [f"torch CPU capability {capability}", "oneDNN bf16 " + ("supported" if native else "unsupported")]
    return CPUPrecision(native, f"{name} ({'; '.join(parts)})")


def bf16_cpu_warning(uses_cpu: bool, bf16: bool) -> str | None:
    """The warning for `--bf16` training on a CPU whose bf16 is emulated (None when there is nothing to say).

    The run keeps bf16, as asked: the flag is an explicit choice, and a silent switch would change the numerics a
    user asked for. The warning names the CPU, the expected slowdown and the fix."""
    if not (uses_cpu and bf16):
        return None
    support = cpu_bf16_support()
    if support.native:
        return None
    return (
        f"--bf16 on a CPU without native bf16: {support.description}. bf16 matmuls are emulated here, about "
        "30x slower than float32 (up to 200x at some shapes), so training will be far slower, not faster. The run "
        "keeps bf16 as asked; drop --bf16 to train in float32."
    )


def check_device(device: str | int | None, flag: str = "--device") -> None:
    """Refuse, before any model loads, a device this machine does not have (`cuda` on a CPU-only torch, a GPU index
    past the count, an unknown name), naming `flag`."""
    if device is None or device == "":
        return
    try:
        dev = torch.device(f"cuda:{device}" if isinstance(device, int) or str(device).isdigit() else str(device))
    except (RuntimeError, ValueError) as err:
        raise CLNERUsageError(f"{flag} {device}: not a device name ({err}); use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise CLNERUsageError(
                f"{flag} {device}: this torch ({torch.__version__}) sees no CUDA GPU; use --device cpu, or install a "
                "CUDA build of torch on a machine with a GPU"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise CLNERUsageError(f"{flag} {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise CLNERUsageError(f"{flag} {device}: the MPS backend is not available here; use --device cpu")

"""The CPU's bf16 support (`clner.hardware`): native only with bf16 instructions, and one warning for `--bf16` on a
CPU that emulates it."""

import pytest

from clner import hardware


@pytest.mark.parametrize(
    "machine,name,flags,native",
    [
        ("x86_64", "AMD EPYC", {"avx2", "fma", "f16c"}, False),
        (
            "x86_64",
            "Intel(R) Xeon(R) Platinum 8481C",
            {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"},
            True,
        ),
        ("x86_64", "Intel(R) Xeon(R) Cooper Lake", {"avx2", "avx512f", "avx512_bf16"}, True),
        ("x86_64", "Intel(R) Xeon(R) Skylake", {"avx2", "avx512f"}, False),
        ("aarch64", "Neoverse-V1", {"asimd", "bf16", "sve"}, True),
        ("aarch64", "Neoverse-N1", {"asimd"}, False),
    ],
)
def test_bf16_is_native_only_with_bf16_instructions(monkeypatch, machine, name, flags, native):
    """bf16 counts as native from the CPU's flags, never from the machine the test runs on; `--bf16` on an
    emulating CPU gets one warning that names the CPU, the slowdown and the fix, and a native one gets none."""
    import platform

    monkeypatch.setattr(hardware, "_cpu_info", lambda: (name, flags))
    monkeypatch.setattr(platform, "machine", lambda: machine)
    support = hardware.cpu_bf16_support()
    assert support.native is native and support.description.startswith(name)
    assert "torch CPU capability" in support.description
    warning = hardware.bf16_cpu_warning(uses_cpu=True, bf16=True)
    if native:
        assert warning is None
    else:
        assert name in warning and "30x slower" in warning and "drop --bf16" in warning
    assert hardware.bf16_cpu_warning(uses_cpu=False, bf16=True) is None
    assert hardware.bf16_cpu_warning(uses_cpu=True, bf16=False) is None

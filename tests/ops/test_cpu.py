"""CPU model and the instruction-set features that decide the classifier's speed."""

from __future__ import annotations

import platform
from pathlib import Path

from edge_daemon.ops.cpu import cpu_info, parse_cpuinfo

XEON = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512bw avx512_vnni
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512bw avx512_vnni
"""
OLD_X86 = (
    "model name\t: Intel(R) Core(TM) i5-4590 CPU @ 3.30GHz\nflags\t\t: sse sse2 avx avx2 fma\n"
)
PI5 = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp asimddp
CPU implementer\t: 0x41
CPU part\t: 0xd0b
Model\t\t: Raspberry Pi 5 Model B Rev 1.0
"""
PI4 = """processor\t: 0
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU part\t: 0xd08
"""


def test_vnni_xeon() -> None:
    info = parse_cpuinfo(XEON, "x86_64", 2)
    assert info.model == "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"
    assert info.features == ("avx2", "fma", "avx512f", "avx512_vnni")
    assert info.int8_dot
    assert "with int8 dot product" in info.line()


def test_avx2_only_cpu_has_no_int8_dot_product() -> None:
    info = parse_cpuinfo(OLD_X86, "x86_64", 4)
    assert info.features == ("avx2", "fma")
    assert not info.int8_dot
    assert "WITHOUT int8 dot product" in info.line()
    assert info.describe()["int8_dot_product"] is False


def test_raspberry_pi_5_names_its_board_and_has_dot_product() -> None:
    info = parse_cpuinfo(PI5, "aarch64", 4)
    assert info.model == "Raspberry Pi 5 Model B Rev 1.0"
    assert info.features == ("asimd", "asimddp")
    assert info.int8_dot


def test_cortex_a72_without_a_model_line_is_named_by_part() -> None:
    info = parse_cpuinfo(PI4, "aarch64", 4)
    assert info.model == "ARM implementer 0x41 part 0xd08"
    assert info.features == ("asimd",)
    assert not info.int8_dot


def test_unreadable_cpuinfo_still_gives_an_answer(tmp_path: Path) -> None:
    info = cpu_info(tmp_path / "missing")
    assert info.machine == platform.machine()
    assert info.model == "unknown"
    assert info.cores >= 1


def test_this_machine() -> None:
    info = cpu_info()
    assert info.cores >= 1
    if platform.machine() == "x86_64" and Path("/proc/cpuinfo").exists():
        assert info.model != "unknown"
        assert "avx2" in Path("/proc/cpuinfo").read_text() or "avx2" not in info.features

"""What CPU the daemon runs on, and the instruction-set features that decide its speed.

The int8 classifier is about five times faster on a CPU with int8 dot-product
instructions (x86 AVX-512 VNNI or AVX-VNNI, AMX; ARM's dot-product extension ``asimddp``)
than on one without (AVX2-only x86, Cortex-A72/A53). Every speed figure the project
quotes is therefore stated with these features, and the daemon logs them and puts them
in its stats, so a slow box can be told apart from a slow model.

Read from ``/proc/cpuinfo`` (Linux); on aarch64 the features come from the kernel's
hardware-capability words (``getauxval``), which are right under emulation too (an
emulator shows the host's ``/proc/cpuinfo``). Elsewhere only :func:`platform.machine` is
known.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from dataclasses import dataclass
from pathlib import Path

#: Features that matter for the classifier's and the detector's kernels, in report order.
X86_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
ARM_FEATURES = ("asimd", "asimddp", "i8mm", "sve", "bf16")
#: aarch64 AT_HWCAP / AT_HWCAP2 bits (linux/arch/arm64/include/uapi/asm/hwcap.h).
_AT_HWCAP, _AT_HWCAP2 = 16, 26
_ARM_HWCAP = {"asimd": (1, 1), "asimddp": (1, 20), "sve": (1, 22), "i8mm": (2, 13), "bf16": (2, 14)}
#: Any of these means int8 dot products in hardware.
INT8_DOT = frozenset({"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"})


@dataclass(frozen=True)
class CpuInfo:
    machine: str  # x86_64, aarch64, ...
    model: str  # "Intel(R) Xeon(R) ...", "Raspberry Pi 5 Model B", or "unknown"
    cores: int
    features: tuple[str, ...]  # the ones in X86_FEATURES / ARM_FEATURES present

    @property
    def int8_dot(self) -> bool:
        """Whether the CPU has int8 dot-product instructions."""
        return bool(INT8_DOT.intersection(self.features))

    def describe(self) -> dict[str, object]:
        return {
            "machine": self.machine,
            "model": self.model,
            "cores": self.cores,
            "features": list(self.features),
            "int8_dot_product": self.int8_dot,
        }

    def line(self) -> str:
        """One line for logs and benchmark headers."""
        feats = " ".join(self.features) or "none of the listed"
        dot = "with" if self.int8_dot else "WITHOUT"
        return f"{self.model} ({self.machine}, {self.cores} cores; {feats}; {dot} int8 dot product)"


def parse_cpuinfo(text: str, machine: str, cores: int) -> CpuInfo:
    """:class:`CpuInfo` from the text of ``/proc/cpuinfo`` (pure, for tests)."""
    fields: dict[str, str] = {}
    flags: set[str] = set()
    for raw in text.splitlines():
        key, sep, value = raw.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key in ("flags", "features"):
            flags.update(value.split())
        fields.setdefault(key, value)
    model = (
        fields.get("model name")  # x86; aarch64 kernels since 5.x print none
        or fields.get("model")  # Raspberry Pi's board name (aarch64)
        or fields.get("hardware")
        or (
            f"ARM implementer {fields['cpu implementer']} part {fields['cpu part']}"
            if "cpu implementer" in fields and "cpu part" in fields
            else "unknown"
        )
    )
    wanted = ARM_FEATURES if machine in ("aarch64", "arm64", "armv7l") else X86_FEATURES
    return CpuInfo(machine, model, cores, tuple(f for f in wanted if f in flags))


def _arm_hwcap_features() -> tuple[str, ...] | None:
    """aarch64 features from ``getauxval``; None where that cannot be read."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        getauxval = libc.getauxval
    except (OSError, AttributeError):
        return None
    getauxval.restype = ctypes.c_ulong
    getauxval.argtypes = [ctypes.c_ulong]
    words = {1: int(getauxval(_AT_HWCAP)), 2: int(getauxval(_AT_HWCAP2))}
    return tuple(f for f in ARM_FEATURES if words[_ARM_HWCAP[f][0]] >> _ARM_HWCAP[f][1] & 1)


def cpu_info(path: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    """This machine's :class:`CpuInfo` (cores: those this process may run on)."""
    machine = platform.machine()
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        text = path.read_text(errors="replace")
    except OSError:
        text = ""
    info = parse_cpuinfo(text, machine, cores)
    if machine == "aarch64" and (feats := _arm_hwcap_features()) is not None:
        info = CpuInfo(machine, info.model, cores, feats)
    return info

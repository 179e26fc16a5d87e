"""Reading and stripping ELF shared libraries, for the layers that must lose their libraries' static symbols to fit.

Only what the build needs of the format: whether a library has a static symbol table or debug sections, whether the
dynamic loader would accept its ``LOAD`` segments, and ``strip --strip-unneeded`` on copies that pass that check.
"""

from __future__ import annotations

import os
import platform
import shutil
import struct
import subprocess
from pathlib import Path


class StripError(RuntimeError):
    """``strip`` failed on a library; the message names it."""


def has_symbols(path: Path) -> bool:
    """Whether an ELF64 file has a static symbol table (SHT_SYMTAB) or debug sections: what ``strip`` would remove."""
    with path.open("rb") as handle:
        header = handle.read(64)
        if header[:5] != b"\x7fELF\x02":
            return False
        (shoff,) = struct.unpack_from("<Q", header, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", header, 0x3A)
        handle.seek(shoff)
        table = handle.read(shentsize * shnum)
        if len(table) < shentsize * shnum or shstrndx >= shnum:
            return False
        sections = [struct.unpack_from("<IIQQQQ", table, i * shentsize) for i in range(shnum)]
        handle.seek(sections[shstrndx][4])
        names = handle.read(sections[shstrndx][5])
    return any(kind == 2 or names[name:].startswith(b".debug") for name, kind, *_rest in sections)


def loadable(path: Path, page: int = 4096) -> bool:
    """Whether each PT_LOAD segment of an ELF64 file has its address and offset congruent modulo the page size and
    its alignment, as the dynamic loader requires. ``strip`` can break that on a library patchelf rewrote (auditwheel
    does, for the libraries it bundles): "ELF load command address/offset not page-aligned"."""
    with path.open("rb") as handle:
        header = handle.read(64)
        (phoff,) = struct.unpack_from("<Q", header, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
        handle.seek(phoff)
        table = handle.read(phentsize * phnum)
    if len(table) < phentsize * phnum:
        return False
    for i in range(phnum):
        kind, _flags, offset, vaddr, _paddr, _filesz, _memsz, align = struct.unpack_from("<IIQQQQQQ", table, i * phentsize)
        if kind == 1 and ((vaddr - offset) % page or (align > 1 and (vaddr - offset) % align)):
            return False
    return True


def strip_tool(architecture: str | None) -> str:
    """The ``strip`` that reads ``architecture``'s ELF files: this machine's own for its architecture, else GNU
    binutils' cross tool (``aarch64-linux-gnu-strip``, Debian's ``binutils-aarch64-linux-gnu``): x86_64's ``strip``
    does not recognise an AArch64 library. Raises :class:`StripError` naming the package when it is missing."""
    if architecture in (None, MACHINES.get(_HOST_MACHINE.get(platform.machine(), 0))):
        return "strip"
    tool = f"{architecture}-linux-gnu-strip"
    if shutil.which(tool) is None:
        raise StripError(
            f"{tool} is missing: stripping {architecture} libraries needs it (Debian: apt-get install binutils-{architecture}-linux-gnu)"
        )
    return tool


def strip_symbols(target: Path) -> dict[str, int]:
    """``strip --strip-unneeded`` each shared library under ``target`` that has symbols to lose.

    Only the static symbol table and debug sections go: the dynamic symbols the loader, Python's import and ctypes
    resolve stay (tracebacks of a native crash lose function names). A library whose stripped copy the loader would
    refuse (see ``loadable``) is kept as it was. Returns ``{"freed": bytes, "kept": libraries left unstripped}``.
    """
    freed = kept = 0
    for library in sorted(p for p in target.rglob("*.so*") if p.is_file() and not p.is_symlink() and has_symbols(p)):
        stripped = library.with_name(library.name + ".stripped")
        command = [strip_tool(machine(library)), "--strip-unneeded", "-o", str(stripped), str(library)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            stripped.unlink(missing_ok=True)
            problem = " ".join(result.stderr.split())[-300:]
            raise StripError(f"strip failed on {library.relative_to(target)}: {problem}")
        if loadable(stripped):
            freed += library.stat().st_size - stripped.stat().st_size
            os.replace(stripped, library)
        else:
            stripped.unlink()
            kept += 1
    return {"freed": freed, "kept": kept}


# e_machine of the architectures a layer is built for (the ELF specification's EM_X86_64 and EM_AARCH64)
MACHINES = {62: "x86_64", 183: "aarch64"}
_SHT_GNU_VERNEED = 0x6FFFFFFE
_HOST_MACHINE = {"x86_64": 62, "AMD64": 62, "aarch64": 183, "arm64": 183}  # platform.machine() → e_machine


def machine(path: Path) -> str | None:
    """The architecture an ELF64 little-endian file is for (``x86_64``, ``aarch64``, or ``EM_<n>``); None if it is not one."""
    with path.open("rb") as handle:
        header = handle.read(20)
    if header[:6] != b"\x7fELF\x02\x01":
        return None
    (number,) = struct.unpack_from("<H", header, 0x12)
    return MACHINES.get(number, f"EM_{number}")


def needed_versions(path: Path) -> set[str]:
    """The symbol versions an ELF64 file needs from the libraries it links (its ``.gnu.version_r``): ``GLIBC_2.17``,
    ``GLIBCXX_3.4.21``, … The loader refuses the file on a system whose libraries lack one of them."""
    data = path.read_bytes()
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    found: set[str] = set()
    for _name, kind, _flags, _addr, offset, _size, link, info, _align, _entsize in sections:
        if kind != _SHT_GNU_VERNEED:
            continue
        strings = sections[link][4]  # the offset of the string table it names
        entry = offset
        for _ in range(info):
            _version, count, _file, aux, following = struct.unpack_from("<HHIII", data, entry)
            position = entry + aux
            for _ in range(count):
                _hash, _vflags, _other, name, next_aux = struct.unpack_from("<IHHII", data, position)
                end = data.index(b"\0", strings + name)
                found.add(data[strings + name : end].decode("ascii"))
                position += next_aux
            entry += following
    return found


def glibc_version(versions: set[str]) -> tuple[int, ...]:
    """The newest ``GLIBC_x.y`` among ``versions`` as a tuple (``(2, 28)``); ``()`` when none is named."""
    numbers = [tuple(int(part) for part in v.removeprefix("GLIBC_").split(".")) for v in versions if v.startswith("GLIBC_2")]
    return max(numbers, default=())

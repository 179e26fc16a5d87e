"""Reading and stripping ELF shared libraries, for the layers that must lose their libraries' static symbols to fit.

Only what the build needs of the format: whether a library has a static symbol table or debug sections, whether the
dynamic loader would accept its ``LOAD`` segments, and ``strip --strip-unneeded`` on copies that pass that check.
"""

from __future__ import annotations

import os
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


def strip_symbols(target: Path) -> dict[str, int]:
    """``strip --strip-unneeded`` each shared library under ``target`` that has symbols to lose.

    Only the static symbol table and debug sections go: the dynamic symbols the loader, Python's import and ctypes
    resolve stay (tracebacks of a native crash lose function names). A library whose stripped copy the loader would
    refuse (see ``loadable``) is kept as it was. Returns ``{"freed": bytes, "kept": libraries left unstripped}``.
    """
    freed = kept = 0
    for library in sorted(p for p in target.rglob("*.so*") if p.is_file() and not p.is_symlink() and has_symbols(p)):
        stripped = library.with_name(library.name + ".stripped")
        command = ["strip", "--strip-unneeded", "-o", str(stripped), str(library)]
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

"""Graviton (``architecture: arm64``): both layers build for ``manylinux_2_34_aarch64`` from their own locks, which pin
the x86_64 locks' versions; every shared object in them is an AArch64 ELF that needs nothing newer than glibc 2.34
(Amazon Linux 2023's); they fit their size budgets; and the build refuses a placeholder or wrong-architecture wheel.

What is not shown here: the handler running on aarch64. That needs an aarch64 CPython 3.12 (the layers hold cp312
extension modules); Debian 12's archive has only python3.11 for arm64 and PyPI ships no interpreters, so
qemu-user-static alone cannot run it (docs/cost.md, "Graviton")."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.packaging import check_size, stage_code
from layers import elf
from layers.build import LayerBuildError, build_layer, check_wheels, lock_inputs, pip_platforms, unzipped_size
from layers.lockfile import pins
from layers.rules import LAMBDA_UNZIPPED_LIMIT, PLATFORM, PLATFORMS, SIZE_BUDGET, X86_ONLY

ARM = PLATFORMS["arm64"]
GLIBC = (2, 34)  # Amazon Linux 2023, the python3.12 runtime's OS on both architectures


@pytest.fixture(scope="module", params=["inference", "training"])
def arm_layer(request: pytest.FixtureRequest) -> tuple[str, Path]:
    return request.param, build_layer(request.param, platform=ARM)


def shared_objects(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.so*") if p.is_file() and not p.is_symlink() and ".so" in p.name)


def test_every_shared_object_is_aarch64_and_needs_at_most_glibc_2_34(arm_layer: tuple[str, Path]) -> None:
    name, path = arm_layer
    objects = shared_objects(path / "python")
    assert len(objects) > 10, name  # numpy, onnxruntime, pydantic-core, msgspec, … (scipy, scikit-learn for training)
    wrong = {str(p.relative_to(path)): elf.machine(p) for p in objects if elf.machine(p) != "aarch64"}
    assert wrong == {}
    too_new = {str(p.relative_to(path)): elf.glibc_version(elf.needed_versions(p)) for p in objects}
    too_new = {file: version for file, version in too_new.items() if version > GLIBC}
    assert too_new == {}
    # the check reads what the loader reads: onnxruntime's extension needs glibc 2.27 or newer on either architecture
    (onnxruntime,) = [p for p in objects if p.name.startswith("onnxruntime_pybind11_state")]
    assert (2, 27) <= elf.glibc_version(elf.needed_versions(onnxruntime)) <= GLIBC


def test_the_arm64_layers_that_deploy_fit_their_budgets(arm_layer: tuple[str, Path]) -> None:
    name, path = arm_layer
    size = unzipped_size(path / "python")
    if name in X86_ONLY:
        # the reason the training function stays on x86_64: when this fails, the layer fits, and X86_ONLY can go
        assert size > SIZE_BUDGET[name]
        return
    assert size <= SIZE_BUDGET[name]
    for function in ("inference", "drift_check", "release"):  # the functions on the inference layer
        assert check_size(function, stage_code(function), {path.name: size}) <= LAMBDA_UNZIPPED_LIMIT


def test_both_architectures_install_the_same_versions() -> None:
    for name in ("inference", "training"):
        x86, arm = lock_inputs(name), lock_inputs(name, platform=ARM)
        assert arm.group == f"layer-{name}-py312-manylinux_2_34_aarch64"
        assert pins(arm.path) == pins(x86.path), name
    assert pip_platforms(ARM)[:2] == ["manylinux_2_34_aarch64", "manylinux_2_33_aarch64"]
    assert pip_platforms(ARM)[-2:] == ["manylinux_2_17_aarch64", "manylinux2014_aarch64"]
    assert PLATFORMS["x86_64"] == PLATFORM


def dist(target: Path, name: str, version: str, tags: list[str], files: list[str]) -> None:
    meta = target / f"{name}-{version}.dist-info"
    meta.mkdir(parents=True)
    (meta / "WHEEL").write_text("Wheel-Version: 1.0\n" + "".join(f"Tag: {tag}\n" for tag in tags), encoding="utf-8")
    (meta / "RECORD").write_text("".join(f"{file},sha256=x,1\n" for file in files), encoding="utf-8")


def test_the_build_refuses_placeholders_and_wheels_of_another_platform(tmp_path: Path) -> None:
    good = tmp_path / "good"
    dist(
        good,
        "pydantic_core",
        "2.50.5",
        ["cp312-cp312-manylinux_2_17_aarch64", "cp312-cp312-manylinux2014_aarch64"],
        ["pydantic_core/_pydantic_core.cpython-312-aarch64-linux-gnu.so"],
    )
    dist(good, "six", "1.17.0", ["py2-none-any", "py3-none-any"], ["six.py"])
    dist(
        good,
        "numpy",
        "2.5.5",
        ["cp312-cp312-manylinux_2_27_aarch64", "cp312-cp312-manylinux_2_28_aarch64"],
        ["numpy.libs/libscipy_openblas64_-1b7162d6.so"],
    )
    # a wheel tagged for older systems too is fine when one tag fits (wrapt's: manylinux1, 2_5 and 2_28)
    wrapt = ["cp312-cp312-manylinux_2_5_aarch64", "cp312-cp312-manylinux1_aarch64", "cp312-cp312-manylinux_2_28_aarch64"]
    dist(good, "wrapt", "2.5.2", wrapt, ["wrapt/_wrappers.cpython-312-aarch64-linux-gnu.so"])
    assert check_wheels(good, ARM) == {
        "wrapt": wrapt,
        "pydantic-core": ["cp312-cp312-manylinux_2_17_aarch64", "cp312-cp312-manylinux2014_aarch64"],
        "six": ["py2-none-any", "py3-none-any"],
        "numpy": ["cp312-cp312-manylinux_2_27_aarch64", "cp312-cp312-manylinux_2_28_aarch64"],
    }

    bad = tmp_path / "bad"
    dist(bad, "pydantic_core", "0.0.1", ["py3-none-any"], ["pydantic_core/__init__.py"])  # the placeholder on PyPI
    dist(bad, "msgspec", "0.23.0", ["cp312-cp312-manylinux_2_17_x86_64"], ["msgspec/_core.cpython-312-x86_64-linux-gnu.so"])
    dist(bad, "fastthing", "1.0", ["py3-none-any"], ["fastthing/_speedups.so"])  # binaries in a pure wheel
    dist(bad, "newer", "1.0", ["cp312-cp312-manylinux_2_39_aarch64"], ["newer/_c.so"])  # needs a newer glibc than 2.34
    with pytest.raises(LayerBuildError) as raised:
        check_wheels(bad, ARM)
    message = str(raised.value)
    assert "pydantic_core 0.0.1 (py3-none-any) has extension modules but is not a manylinux_2_34_aarch64 wheel" in message
    assert "msgspec 0.23.0 (cp312-cp312-manylinux_2_17_x86_64) has extension modules but is not a manylinux_2_34_aarch64 wheel" in message
    assert "fastthing 1.0 (py3-none-any) has extension modules" in message
    assert "newer 1.0 (cp312-cp312-manylinux_2_39_aarch64) has extension modules but is not a manylinux_2_34_aarch64 wheel" in message
    # and on x86_64 the aarch64 wheels of the good folder are another platform's
    with pytest.raises(LayerBuildError, match=r"pydantic_core 2\.50\.5 .* is not a manylinux_2_34_x86_64 wheel"):
        check_wheels(good, PLATFORM)
    (pure := tmp_path / "pure").mkdir()
    dist(pure, "oddity", "1.0", ["py3-none-any", "cp312-cp312-win_amd64"], ["oddity/__init__.py"])
    with pytest.raises(LayerBuildError, match=r"oddity 1\.0 .* is a wheel for another platform than manylinux_2_34_aarch64"):
        check_wheels(pure, ARM)


def test_aarch64_libraries_are_stripped_by_binutils_cross_strip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(elf.platform, "machine", lambda: "x86_64")
    assert elf.strip_tool("x86_64") == "strip"
    assert elf.strip_tool(None) == "strip"  # not an ELF file: strip says so itself
    monkeypatch.setattr(elf.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    assert elf.strip_tool("aarch64") == "aarch64-linux-gnu-strip"
    monkeypatch.setattr(elf.shutil, "which", lambda tool: None)
    with pytest.raises(elf.StripError, match=r"aarch64-linux-gnu-strip is missing: .*apt-get install binutils-aarch64-linux-gnu"):
        elf.strip_tool("aarch64")
    monkeypatch.setattr(elf.platform, "machine", lambda: "aarch64")  # on a Graviton build machine its own strip
    assert elf.strip_tool("aarch64") == "strip"

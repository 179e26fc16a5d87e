"""Every environment installs from a committed lock (``locks/*.txt``) that agrees with pyproject's ranges.

A fresh clone installs the same versions on any day: the development venv (``make install``), both Lambda layers
and the benchmark venvs install exactly what their lock pins, with hashes. When pyproject changes and the locks do
not, the test below fails naming the group and the command that refreshes it (``make lock``).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from layers import build, lockfile
from layers.build import RUNTIME_PROVIDES, LayerBuildError, build_layer
from layers.lock import groups, uv_platform
from layers.lockfile import LockInputs, canonical, pins, problems, read_header

ROOT = Path(__file__).resolve().parents[2]
GROUPS = groups()


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_each_lock_agrees_with_pyproject(group: str) -> None:
    assert problems(GROUPS[group]) == []
    text = GROUPS[group].path.read_text(encoding="utf-8")
    # exact versions with their hashes, nothing left to a resolver on the day of the install
    requirement_lines = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    assert requirement_lines
    assert all("==" in line for line in requirement_lines), [line for line in requirement_lines if "==" not in line]
    assert text.count("--hash=sha256:") >= len(requirement_lines)
    assert "file://" not in text  # no path of this machine
    assert "/opt/" not in text


def test_the_layer_locks_are_resolved_for_the_runtime_and_leave_boto3_to_it() -> None:
    for name in ("inference", "training"):
        inputs = GROUPS[f"layer-{name}"]
        header = read_header(inputs.path)
        assert (header["python"], header["platform"]) == (build.PYTHON_VERSION, build.PLATFORM)
        assert " ; " not in inputs.path.read_text(encoding="utf-8")  # no markers: pip would judge them by its own Python
        assert "boto3" not in pins(inputs.path)
    assert uv_platform("manylinux_2_34_x86_64") == "x86_64-manylinux_2_34"
    assert uv_platform("manylinux_2_34_aarch64") == "aarch64-manylinux_2_34"


def _pyproject_with(tmp_path: Path, old: str, new: str) -> Path:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert old in text
    changed = tmp_path / "pyproject.toml"
    changed.write_text(text.replace(old, new), encoding="utf-8")
    return changed


def test_a_changed_range_makes_exactly_the_locks_that_install_it_stale(tmp_path: Path) -> None:
    changed = groups(_pyproject_with(tmp_path, '"scikit-learn>=1.5,<1.10"', '"scikit-learn>=1.5,<1.9"'))
    stale = {name: problems(inputs) for name, inputs in changed.items() if problems(inputs)}
    # the family layers extend the training layer
    assert sorted(stale) == [
        "dev",
        "layer-training",
        "layer-training-lightgbm",
        "layer-training-py312-manylinux_2_34_aarch64",
        "layer-training-xgboost",
    ]
    message = " ".join(stale["layer-training"])
    assert "group 'layer-training' was locked from other requirements than pyproject.toml" in message
    assert "make lock" in message
    assert re.search(r"scikit-learn==1\.\d+\.\d+ is outside 'scikit-learn>=1.5,<1.9'", message)


def test_a_new_requirement_is_named_when_no_lock_pins_it(tmp_path: Path) -> None:
    old = '"pyyaml>=6,<7",\n    # the retraining'
    changed = groups(_pyproject_with(tmp_path, old, old.replace(",\n", ',\n    "lightgbm>=4",\n', 1)))
    found = problems(changed["layer-training"])
    assert any("lightgbm is required (lightgbm>=4) but not pinned" in problem for problem in found)
    assert problems(changed["layer-inference"]) == []


def test_a_missing_or_foreign_lock_is_named(tmp_path: Path) -> None:
    inputs = LockInputs("layer-x", ("numpy>=2",), "3.12", "manylinux_2_34_x86_64", folder=tmp_path)
    assert problems(inputs) == [f"{tmp_path}/layer-x.txt: no lock for group 'layer-x'; run `make lock`"]
    inputs.path.write_text(LockInputs("layer-x", ("numpy>=2",), "3.13", "manylinux_2_34_x86_64").header("t") + "numpy==2.5.5 \\\n")
    found = problems(inputs)
    assert any("locked for python '3.13', group 'layer-x' needs '3.12'" in problem for problem in found)
    # the digest does not depend on the order or spacing of the ranges
    assert LockInputs("g", ("a>=1", "b <2"), "3.12").digest() == LockInputs("g", ("b  <2", "a>=1"), "3.12").digest()


def test_the_layer_build_refuses_a_stale_lock_and_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(lockfile, "LOCKS", tmp_path / "locks")
    (tmp_path / "locks").mkdir()
    shutil.copy(ROOT / "locks" / "layer-inference.txt", tmp_path / "locks")
    lock = tmp_path / "locks" / "layer-inference.txt"
    lock.write_text(lock.read_text(encoding="utf-8").replace("# inputs-sha256: ", "# inputs-sha256: 0"), encoding="utf-8")
    with pytest.raises(LayerBuildError, match=r"layer 'inference': .*layer-inference.txt: group 'layer-inference' was locked from other"):
        build_layer("inference")
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("name", ["inference", "training"])
def test_a_built_layer_holds_exactly_what_its_lock_pins(name: str) -> None:
    folder = build_layer(name)
    manifest = json.loads((folder / "layer.json").read_text(encoding="utf-8"))
    lock = lockfile.LOCKS / f"layer-{name}.txt"
    assert manifest["lock"] == {"file": lock.name, "sha256": hashlib.sha256(lock.read_bytes()).hexdigest()}
    installed = {canonical(entry.split("==")[0]): entry.split("==")[1] for entry in manifest["installed"]}
    # all of it but what the runtime provides and what a prune rule removes whole (protobuf from inference)
    pruned = {canonical(rule.split("-")[0]) for rule in build.PRUNE[name] if rule.endswith(".dist-info")}
    locked = {package: version for package, version in pins(lock).items() if package not in RUNTIME_PROVIDES | pruned}
    assert installed == locked
    assert manifest["left_to_runtime"] == sorted(set(pins(lock)) & RUNTIME_PROVIDES)


def test_make_install_installs_the_development_lock_with_hashes_and_nothing_else() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    install = makefile[makefile.index("$(STAMP): ") : makefile.index("lock: install")]
    assert "LOCK := locks/dev.txt" in makefile
    assert "--require-hashes --no-deps --requirement $(LOCK)" in install
    assert "--no-deps --no-build-isolation --editable ." in install
    assert "--upgrade" not in install  # nothing newer than the lock, pip included
    # the venv holds what the lock pins, at its versions (the project itself aside)
    from importlib.metadata import distributions

    here = {canonical(dist.metadata["Name"]): dist.version for dist in distributions()}
    locked = pins(lockfile.LOCKS / "dev.txt")
    differ = {name: (version, here.get(name)) for name, version in locked.items() if here.get(name) != version}
    assert differ == {}, f"this venv is not what locks/dev.txt pins (run make install): {differ}"


def test_the_benchmark_venvs_install_from_their_locks() -> None:
    for script, lock in (("inference.py", "bench.txt"), ("drift.py", "bench-evidently.txt")):
        source = (ROOT / "benchmarks" / script).read_text(encoding="utf-8")
        assert "locked_venv(" in source
        assert f'"{lock}"' in source
    assert "install(folder, path" in (ROOT / "benchmarks" / "_venv.py").read_text(encoding="utf-8")  # layers.lock.install
    installer = (ROOT / "layers" / "lock.py").read_text(encoding="utf-8")
    assert '"--no-deps"' in installer
    assert '"--require-hashes", "--requirement"' in installer
    bench = pins(lockfile.LOCKS / "bench.txt")
    dev = pins(lockfile.LOCKS / "dev.txt")
    assert (bench["scikit-learn"], bench["onnxruntime"]) == (dev["scikit-learn"], dev["onnxruntime"])


def _fake_uv(calls: list[tuple[list[str], str | None]]) -> object:
    """A stand-in for ``subprocess.run`` of uv: records each compile's arguments and what its output file held before
    uv ran (uv prefers the pins of an existing output file), then writes one pin as uv would."""
    import subprocess

    def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        if command[1:] == ["--version"]:
            return subprocess.CompletedProcess(command, 0, stdout="uv 0.13.9 (x)\n", stderr="")
        output = Path(command[command.index("--output-file") + 1])
        calls.append((command, output.read_text(encoding="utf-8") if output.exists() else None))
        output.write_text("numpy==2.4.6 \\\n    --hash=sha256:00\n", encoding="utf-8")
        return subprocess.CompletedProcess(command, 0, stdout="", stderr="")

    return run


def test_make_lock_keeps_the_pins_a_lock_has_unless_asked_for_newer_or_lowest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from layers import lock

    calls: list[tuple[list[str], str | None]] = []
    monkeypatch.setattr(lock.subprocess, "run", _fake_uv(calls))
    monkeypatch.setattr(lock, "uv", lambda: "uv")
    inputs = LockInputs("g", ("numpy>=1.26",), "3.11", folder=tmp_path)
    existing = inputs.header("uv 0.13.9") + "numpy==2.4.6 \\\n    --hash=sha256:00\n"
    inputs.path.write_text(existing, encoding="utf-8")

    lock.resolve(inputs)  # make lock: uv sees the lock it replaces, so it keeps numpy 2.4.6 while the range allows it
    command, seen = calls[-1]
    assert seen == existing
    assert "--upgrade" not in command
    assert "--resolution" not in command
    lock.resolve(inputs, upgrade=True)  # the newest releases: no preference
    assert calls[-1][1] is None
    lock.resolve(inputs, lowest=True)  # each requirement at its floor
    command, seen = calls[-1]
    assert seen is None
    assert command[command.index("--resolution") + 1] == "lowest-direct"
    assert inputs.path.read_text(encoding="utf-8").startswith("# g.txt: ")


def test_lowest_locks_are_written_only_into_a_scratch_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from layers.lock import main

    assert main(["--lowest", "dev"]) == 1
    assert "--lowest writes the floors' locks into a scratch folder: name it with --out DIR (not locks/)" in capsys.readouterr().err
    assert main(["--lowest", "--out", str(lockfile.LOCKS), "dev"]) == 1

"""What each Lambda layer holds and why: the runtime it targets, its size budget, and what its build removes.

Data with reasons, read by ``layers/build.py`` (how a layer is built) and by the tests that check each rule; the
README of this folder explains each table.
"""

from __future__ import annotations

# The Lambda runtime the layers are built for. python3.12 runs on Amazon Linux 2023 (glibc 2.34); python3.11 runs on
# Amazon Linux 2 (glibc 2.26), where onnxruntime >= 1.17 (wheels tagged manylinux_2_27/2_28) cannot load.
PYTHON_VERSION = "3.12"
PLATFORM = "manylinux_2_34_x86_64"
# The platform of each architecture the deployment config allows (`architecture: x86_64 | arm64`): Graviton runs the
# same Amazon Linux 2023, so the same glibc 2.34 bounds the aarch64 wheels (layers/build.py pip_platforms lists the tags)
PLATFORMS = {"x86_64": PLATFORM, "arm64": "manylinux_2_34_aarch64"}
# Layers that stay on x86_64 whatever the deployment's architecture. training: on aarch64 it is 259.0 MB unzipped, over
# its 251.1 MB budget (it would fit Lambda's 262.1 MB with 2.8 MB to spare, too little for a newer scipy): the aarch64
# wheels' extension modules are linked with 64 KiB segment alignment and the padding is in the files (scikit-learn
# +9.2 MB, scipy +8.7 MB against x86_64's 4 KiB). Its function runs a few times a month: Graviton would save cents.
X86_ONLY = frozenset({"training"})
# Lambda's limit for a function's code plus its layers, unzipped: 250 MiB (262,144,000 bytes)
LAMBDA_UNZIPPED_LIMIT = 250 * 2**20
# What each layer may weigh unzipped, so its functions fit with room to spare (tests/infra check it on the locked
# versions; `make check-latest` prints the size newer releases would give). In bytes; MB here are 10^6 bytes.
SIZE_BUDGET = {
    # issue 3's target: the inference function (0.3 MB of code) and its layer within 130 MB, for the cold start
    "inference": 129 * 10**6,
    # Lambda's limit, less 1 MB for the Train function's code (0.3 MB today) and 10 MB of headroom kept free so that
    # a newer numpy, scipy or scikit-learn, taken on purpose with `make lock`, still fits: 251.1 MB. When a refreshed
    # lock goes past it, prune more of what training never imports (PRUNE, each rule with its reason) before
    # spending the headroom.
    "training": LAMBDA_UNZIPPED_LIMIT - 10**6 - 10 * 10**6,
}
RUNTIME_PROVIDES = frozenset({"boto3", "botocore", "s3transfer"})
# Distributions with extension modules: each must install from a wheel tagged for the layer's platform. A resolver
# that finds no such wheel may settle for something that installs and cannot work: for aarch64, a lone
# `--platform manylinux_2_34_aarch64` picked `pydantic_core-0.0.1-py3-none-any`, an empty placeholder. The build
# checks this list, and any distribution whose RECORD holds a shared library, after the install (check_wheels).
PLATFORM_WHEELS = frozenset(
    {"numpy", "onnxruntime", "pydantic-core", "msgspec", "wrapt", "scipy", "scikit-learn", "pandas", "onnx", "ml-dtypes", "pyyaml"}
)
STRIP_DIRS = frozenset({"__pycache__", "tests"})
# type stubs and Cython declarations: read by type checkers and compilers, never by an import
STRIP_SUFFIXES = (".pyi", ".pxd")
# pip's bookkeeping in each *.dist-info: RECORD lists files this build strips, and nothing installs into or
# uninstalls from a layer. METADATA (importlib.metadata.version reads it), entry points, licenses and SBOMs stay.
STRIP_DIST_INFO = frozenset({"RECORD", "INSTALLER", "REQUESTED", "WHEEL", "direct_url.json"})
# What a layer's functions never import, removed after the install: glob (relative to python/) -> why it is safe.
# tests/infra/test_layer_runtime.py runs the handler and a prediction under the runtime's Python on the result.
# Both layers open an InferenceSession and nothing else of onnxruntime (training for the parity check only):
_ONNXRUNTIME_PRUNE = {
    # 35 MB: the shared library of onnxruntime's C/C++ API, for native programs. The Python extension module
    # has the whole runtime linked in and does not load it (its DT_NEEDED names only libc, libstdc++, libm,
    # libgcc_s, libdl, librt, libpthread); _prune keeps a library another binary names.
    "onnxruntime/capi/libonnxruntime.so.*": "the C API library for native programs; the Python extension does not link it",
    "onnxruntime/transformers": "offline optimizer for transformer models (imports onnx, torch)",
    "onnxruntime/quantization": "offline model quantization (imports onnx); training converts with skl2onnx and never quantizes",
    "onnxruntime/tools": "offline ORT-format conversion and model tools (import onnx, flatbuffers)",
    "onnxruntime/backend": "the ONNX backend-test API (imports onnx)",
    "onnxruntime/datasets": "three example models",
}
_NUMPY_PRUNE = {
    "numpy/_core/include": "numpy's C headers, for compiling extensions",
    "numpy/_core/lib": "numpy's static npymath library and pkg-config file, for compiling extensions",
    "numpy/_pyinstaller": "numpy's PyInstaller hook",
    "numpy/_core/_simd.*.so": "numpy's SIMD test module (1.5 MB), imported only by numpy's tests",
    "numpy/_core/_*_tests.*.so": "extension modules imported only by numpy's tests",
}
PRUNE: dict[str, dict[str, str]] = {
    "inference": {
        **_ONNXRUNTIME_PRUNE,
        # protobuf (the google package): onnxruntime declares it for the tools above; the only other importer is
        # powertools' optional Kafka protobuf deserializer, which the functions do not use
        "google": "protobuf, imported only by onnxruntime's offline tools and powertools' Kafka protobuf deserializer",
        "protobuf-*.dist-info": "the metadata of the protobuf removed above",
        **_NUMPY_PRUNE,
        "numpy/f2py": "numpy's Fortran wrapper generator, a build tool",
        "numpy/conftest.py": "pytest configuration of numpy's own test suite",
    },
    "training": {
        **_ONNXRUNTIME_PRUNE,  # protobuf stays: onnx and skl2onnx build every graph with it
        # 12 MB: onnx's backend conformance suite (test cases and their .pb tensors), run by backend developers
        "onnx/backend/test": "onnx's backend conformance suite and its data; imported only by backend test runners",
        # onnx/reference: imported only by onnx/backend/test and onnxruntime/quantization, both pruned
        "onnx/reference": "onnx's pure-Python evaluator; skl2onnx converts and onnxruntime checks parity without it",
        # numpy/f2py stays here: scipy's array_api_compat copies every attribute of numpy, and numpy.f2py is one
        **_NUMPY_PRUNE,
        "numpy/random/lib": "numpy.random's static library, for compiling extensions",
        "numpy/random/_examples": "examples of extending numpy.random with Cython, Numba and CFFI",
        "**/conftest.py": "pytest configuration of numpy's, scipy's, pandas' and scikit-learn's own test suites",
        # sources shipped beside the compiled modules (scikit-learn's, scipy's Cython; onnx's C++, 2.4 MB)
        "**/*.pyx": "Cython sources of modules that ship compiled",
        "**/*.pxi": "Cython include files, read only when compiling",
        "**/*.tp": "Tempita templates that generate Cython sources at build time",
        "**/*.c": "C sources of modules that ship compiled",
        "**/*.cc": "C++ sources of modules that ship compiled (onnx's checker, shape inference, op schemas)",
        "**/*.cpp": "C++ sources of modules that ship compiled",
        "**/*.h": "C and C++ headers, for compiling extensions",
        "**/meson.build": "build files",
        "sklearn/datasets/images": "two sample JPEGs for load_sample_images, which needs Pillow: the layer has none",
    },
}
BYTECODE_MODES = ("pycache", "sourceless", "none")
# The bytecode mode of each layer when build_layer is not given one (README: "Bytecode modes").
# training: with .py + __pycache__ the layer is 48 MB bigger (the sources) and does not fit Lambda's 250 MB; its
# function runs minutes of fitting, so a traceback without source lines matters more than a cold start, and a
# sourceless .pyc still names /opt/python/<file> and the line number.
BYTECODE = {"inference": "pycache", "training": "sourceless"}
# Layers whose shared libraries lose their static symbol tables and debug sections (strip --strip-unneeded), 15 MB
# for training (scipy's and numpy's OpenBLAS, libyaml in PyYAML, ...). The dynamic symbol table, which the loader
# and ctypes read, stays; tests/infra/test_layer_training.py loads every extension module of the result.
STRIP_SYMBOLS = frozenset({"training"})
# Layers that are another layer plus an optional dependency group: the training layer with an estimator family
# (pyproject [lightgbm], [xgboost]), for a deployment whose specs name one. Each has its own lock
# (locks/layer-training-<group>.txt) and is built, pruned, stripped and budgeted as its base layer is; a deployment
# whose family layer does not fit Lambda's limit is refused at synth (infra/families.py).
EXTENDS: dict[str, tuple[str, str]] = {
    "training-lightgbm": ("training", "lightgbm"),
    "training-xgboost": ("training", "xgboost"),
}


def base_layer(name: str) -> str:
    """The layer whose rules (PRUNE, BYTECODE, STRIP_SYMBOLS, SIZE_BUDGET) ``name`` follows: itself, or what it extends."""
    return EXTENDS[name][0] if name in EXTENDS else name


# Shared libraries a layer's binaries name that the Lambda runtime lacks, copied into the layer's lib/ (Lambda puts
# /opt/lib on LD_LIBRARY_PATH) from a copy the layer already holds: soname -> glob (relative to python/).
# lightgbm's lib_lightgbm.so names the system's libgomp.so.1 (GNU OpenMP), which Amazon Linux 2023's minimal image,
# the python3.12 runtime's, does not have; scikit-learn's wheel vendors the same runtime (auditwheel renamed it).
# xgboost-cpu vendors its own.
PROVIDE_LIBRARIES: dict[str, dict[str, str]] = {
    "training-lightgbm": {"libgomp.so.1": "scikit_learn.libs/libgomp-*.so*"},
}

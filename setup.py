"""Build featperm's compiled library, ``featperm._C``.

One extension: the C++ CPU kernels always; the CUDA kernels whenever nvcc and a CUDA build of
torch are present (no GPU is needed to compile them).

Environment switches
--------------------
FEATPERM_CUDA        ``auto`` (default): build CUDA kernels if nvcc and a CUDA torch are found;
                     ``1``: require them (fail otherwise); ``0``: CPU-only build.
TORCH_CUDA_ARCH_LIST architectures, default ``8.0;9.0+PTX`` (sm_80, sm_90 and PTX for newer chips).
FEATPERM_DEBUG       ``1``: -O0 -g (and -G for device code).
MAX_JOBS             parallel compile jobs (ninja), as for any torch extension.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))


def _real_cuda_home():
    """Return the toolkit folder behind ``nvcc``, or None.

    ``nvcc`` may be a wrapper script in /usr/local/bin, from which torch guesses the wrong folder
    (and then fails to find libcudart). ``nvcc --dryrun`` prints the real one after ``TOP=``.
    """
    if os.environ.get("CUDA_HOME"):
        return os.environ["CUDA_HOME"]
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    try:
        out = subprocess.run(
            [nvcc, "--dryrun", "-c", "-x", "cu", "/dev/null", "-o", "/dev/null"],
            capture_output=True, text=True, timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"TOP=(\S+)", out.stdout + out.stderr)
    if match:
        return os.path.realpath(match.group(1))
    return os.path.realpath(os.path.join(os.path.dirname(os.path.realpath(nvcc)), ".."))


_cuda_mode = os.environ.get("FEATPERM_CUDA", "auto").lower()
if _cuda_mode not in ("auto", "0", "1"):
    sys.exit(f"FEATPERM_CUDA must be auto, 0 or 1, got {_cuda_mode!r}")
if _cuda_mode != "0":
    _home = _real_cuda_home()
    if _home:
        # Must be set before torch.utils.cpp_extension is imported: it reads CUDA_HOME once.
        os.environ["CUDA_HOME"] = _home
os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0+PTX")

import torch  # noqa: E402
from setuptools import setup  # noqa: E402
from torch.utils import cpp_extension  # noqa: E402

cuda_available_to_build = torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None
if _cuda_mode == "1" and not cuda_available_to_build:
    sys.exit(
        "FEATPERM_CUDA=1 but no CUDA build is possible: "
        f"torch.version.cuda={torch.version.cuda!r}, CUDA_HOME={cpp_extension.CUDA_HOME!r}"
    )
with_cuda = _cuda_mode != "0" and cuda_available_to_build
debug = os.environ.get("FEATPERM_DEBUG", "0") == "1"

sources = sorted(glob.glob(os.path.join("csrc", "*.cpp")) + glob.glob(os.path.join("csrc", "ops", "*.cpp"))
                 + glob.glob(os.path.join("csrc", "ops", "cpu", "*.cpp")))
cxx_flags = ["-O0" if debug else "-O3"]
if debug:
    cxx_flags.append("-g")
extra_compile_args = {"cxx": cxx_flags}
define_macros = []
if with_cuda:
    # .cu files hold only kernels and launchers (no torch headers: they compile fast); the torch
    # glue for CUDA lives in csrc/ops/cuda/*.cpp.
    sources += sorted(glob.glob(os.path.join("csrc", "ops", "cuda", "*.cu"))
                      + glob.glob(os.path.join("csrc", "ops", "cuda", "*.cpp")))
    extra_compile_args["nvcc"] = ["-O0" if debug else "-O3", "-lineinfo"] + (["-G", "-g"] if debug else [])
    define_macros.append(("FEATPERM_WITH_CUDA", "1"))
    Extension = cpp_extension.CUDAExtension
else:
    Extension = cpp_extension.CppExtension

print(
    "featperm build configuration:\n"
    f"  torch {torch.__version__} (CUDA {torch.version.cuda}), python {sys.version.split()[0]}\n"
    f"  FEATPERM_CUDA={_cuda_mode} -> CUDA kernels: {'yes' if with_cuda else 'no'}\n"
    f"  CUDA_HOME={cpp_extension.CUDA_HOME}\n"
    f"  TORCH_CUDA_ARCH_LIST={os.environ['TORCH_CUDA_ARCH_LIST'] if with_cuda else '-'}\n"
    f"  debug={debug}, sources={len(sources)}",
    flush=True,
)

# What featperm info reports as the build configuration (an ignored, generated file).
with open(os.path.join(ROOT, "featperm", "_build.json"), "w", encoding="utf-8") as fh:
    json.dump({"built_with_torch": torch.__version__, "cuda_kernels": with_cuda,
               "torch_cuda_arch_list": os.environ["TORCH_CUDA_ARCH_LIST"] if with_cuda else None,
               "debug": debug}, fh)

# Name, version (featperm/_version.py), dependencies and the `featperm` command: pyproject.toml.
setup(
    ext_modules=[
        Extension(
            "featperm._C",
            sources,
            include_dirs=[os.path.join(ROOT, "csrc")],
            extra_compile_args=extra_compile_args,
            define_macros=define_macros,
            py_limited_api=True,
        )
    ],
    cmdclass={"build_ext": cpp_extension.BuildExtension},
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)

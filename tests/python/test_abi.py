"""The package and the library agree: the ctypes mirrors of the C structures have the sizes and field
offsets the compiler gives them, and the versions match."""

import ctypes
import os
import re
import shutil
import subprocess

import pytest
from conftest import REPO

import rwkvc
from rwkvc import _lib


def test_structures_match_the_headers(tmp_path):
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    lines = ["#include <stddef.h>", "#include <stdio.h>"]
    lines += [f'#include "{h}"' for h in ("rwkv.h", "rwkv_tokenizer.h", "rwkv_sample.h", "rwkv_eval.h",
                                           "rwkv_train.h")]
    lines.append("int main(void) {")
    expected = []
    for struct in _lib.STRUCTURES:
        name = struct._c_name
        lines.append(f'    printf("{name} %zu\\n", sizeof({name}));')
        expected.append(f"{name} {ctypes.sizeof(struct)}")
        for field, _ in struct._fields_:
            lines.append(f'    printf("{name}.{field} %zu\\n", offsetof({name}, {field}));')
            expected.append(f"{name}.{field} {getattr(struct, field).offset}")
    lines += ["    return 0;", "}"]
    source = tmp_path / "layout.c"
    source.write_text("\n".join(lines) + "\n")
    subprocess.run([cc, "-std=c11", "-I", os.path.join(REPO, "include"), "-o", tmp_path / "layout", source],
                   check=True)
    got = subprocess.run([tmp_path / "layout"], capture_output=True, check=True).stdout.decode().split("\n")
    assert [line for line in got if line] == expected


def test_version_is_the_library_and_header_version():
    header = open(os.path.join(REPO, "include", "rwkv.h")).read()
    version = re.search(r'#define RWKV_VERSION "([^"]+)"', header).group(1)
    assert rwkvc.__version__ == version == _lib.lib.rwkv_version().decode()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)


def test_the_package_loads_its_own_copy_of_the_library():
    assert rwkvc.LIBRARY_PATH == os.path.join(os.path.dirname(rwkvc.__file__), "librwkv.so")
    build = os.path.join(REPO, "build", "librwkv.so")
    if os.path.exists(build):
        assert open(build, "rb").read() == open(rwkvc.LIBRARY_PATH, "rb").read()


def test_every_public_function_has_a_docstring():
    missing = []
    for name in rwkvc.__all__:
        obj = getattr(rwkvc, name)
        if callable(obj) and not (obj.__doc__ or "").strip():
            missing.append(name)
        for attr, member in vars(obj).items() if isinstance(obj, type) else ():
            if not attr.startswith("_") and callable(getattr(member, "fget", member)) and \
                    not (getattr(member, "__doc__", "") or "").strip():
                missing.append(f"{name}.{attr}")
    assert missing == []

"""`pip install ./python` works offline: the wheel carries the modules, the library and its version."""

import os
import subprocess
import sys
import zipfile

import pytest
from conftest import REPO

import rwkvc

PACKAGE = os.path.join(REPO, "python")


def build_backend():
    sys.path.insert(0, PACKAGE)
    try:
        import rwkvc_build
    finally:
        sys.path.remove(PACKAGE)
    return rwkvc_build


def test_wheel_contents(tmp_path):
    backend = build_backend()
    assert backend.get_requires_for_build_wheel() == []
    name = backend.build_wheel(str(tmp_path))
    assert name.startswith(f"rwkvc-{rwkvc.__version__}-py3-none-") and name.endswith(".whl")
    with zipfile.ZipFile(tmp_path / name) as wheel:
        names = set(wheel.namelist())
        metadata = wheel.read(f"rwkvc-{rwkvc.__version__}.dist-info/METADATA").decode()
        record = wheel.read(f"rwkvc-{rwkvc.__version__}.dist-info/RECORD").decode()
        library = wheel.read("rwkvc/librwkv.so")
    assert {"rwkvc/__init__.py", "rwkvc/_lib.py", "rwkvc/librwkv.so"} <= names
    assert f"Version: {rwkvc.__version__}" in metadata.splitlines()
    assert all(n in record for n in names)
    assert library == open(rwkvc.LIBRARY_PATH, "rb").read()
    with pytest.raises(backend.UnsupportedOperation):
        backend.build_sdist(str(tmp_path))


def test_pip_installs_offline(tmp_path):
    python = sys.executable
    if subprocess.run([python, "-m", "pip", "--version"], capture_output=True).returncode != 0:
        pytest.skip(f"pip is not installed for {python} (Debian: python3-pip)")
    target = tmp_path / "site"
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run([python, "-m", "pip", "install", "--no-index", "--target", target, PACKAGE],
                          capture_output=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    code = "import rwkvc, importlib.metadata as md; print(rwkvc.__version__, md.version('rwkvc'), rwkvc.LIBRARY_PATH)"
    out = subprocess.run([python, "-c", code], capture_output=True, cwd=tmp_path, timeout=60,
                         env=dict(env, PYTHONPATH=str(target)))
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    version, dist_version, library = out.stdout.decode().split()
    assert version == dist_version == rwkvc.__version__
    assert library == str(target / "rwkvc" / "librwkv.so")

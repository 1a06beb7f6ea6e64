"""The build backend of the rwkvc package (PEP 517 and PEP 660), standard library only.

It needs nothing from the network or from a package index: pip builds a
package in an isolated environment, where even Debian's setuptools is out
of sight, so a backend with build requirements could not be installed
offline with a plain ``pip install ./python``. This one declares none.

The wheel holds the Python modules and ``rwkvc/librwkv.so``, the library the
repository's ``make`` copied into the package; its version is the one that
library reports (``rwkv_version()``), so the package and the C library always
carry the same number.
"""

import base64
import ctypes
import hashlib
import os
import sysconfig
import zipfile

NAME = "rwkvc"
SUMMARY = "RWKV language models from Python over the rwkv.c library (librwkv, through ctypes)"
REQUIRES_PYTHON = ">=3.8"
HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_DIR = os.path.join(HERE, NAME)
LIBRARY = os.path.join(PACKAGE_DIR, "librwkv.so")


class UnsupportedOperation(Exception):
    """PEP 517's signal that this backend cannot do what was asked."""


def _library_version():
    if not os.path.exists(LIBRARY):
        raise RuntimeError(f"{LIBRARY} is missing: run `make` at the root of the rwkv.c repository first "
                           "(it builds librwkv.so and copies it into the package)")
    lib = ctypes.CDLL(LIBRARY)
    lib.rwkv_version.restype = ctypes.c_char_p
    return lib.rwkv_version().decode()


def _tag():
    """py3-none-<platform>: pure Python code next to a compiled library of this platform."""
    return "py3-none-" + sysconfig.get_platform().replace("-", "_").replace(".", "_")


def _metadata(version):
    return (f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {version}\nSummary: {SUMMARY}\n"
            f"Requires-Python: {REQUIRES_PYTHON}\nProvides-Extra: numpy\n"
            "Requires-Dist: numpy; extra == \"numpy\"\n")


def _record_line(arcname, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def _write_wheel(wheel_directory, files):
    """Writes a wheel of ``files`` ({name in the wheel: bytes}) plus its dist-info; returns its file name."""
    version = _library_version()
    dist_info = f"{NAME}-{version}.dist-info"
    files = dict(files)
    files[f"{dist_info}/METADATA"] = _metadata(version).encode()
    files[f"{dist_info}/WHEEL"] = (f"Wheel-Version: 1.0\nGenerator: {NAME}_build\nRoot-Is-Purelib: false\n"
                                   f"Tag: {_tag()}\n").encode()
    files[f"{dist_info}/top_level.txt"] = f"{NAME}\n".encode()
    record = [_record_line(name, data) for name, data in files.items()] + [f"{dist_info}/RECORD,,"]
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    filename = f"{NAME}-{version}-{_tag()}.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if name.endswith(".so") else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(info, data)
    return filename


def _package_files():
    files = {}
    for name in sorted(os.listdir(PACKAGE_DIR)):
        if name.endswith(".py") or name == "librwkv.so":
            with open(os.path.join(PACKAGE_DIR, name), "rb") as f:
                files[f"{NAME}/{name}"] = f.read()
    return files


def get_requires_for_build_wheel(config_settings=None):
    """No build requirements."""
    return []


def get_requires_for_build_editable(config_settings=None):
    """No build requirements."""
    return []


def get_requires_for_build_sdist(config_settings=None):
    """No build requirements."""
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    """The wheel: the modules and the library copied into the package."""
    return _write_wheel(wheel_directory, _package_files())


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """An editable wheel: a .pth file that puts this folder on sys.path (``pip install -e ./python``)."""
    _library_version()
    return _write_wheel(wheel_directory, {f"{NAME}.pth": (HERE + "\n").encode()})


def build_sdist(sdist_directory, config_settings=None):
    """Not offered: the package is built from the repository, after `make` has built its library."""
    raise UnsupportedOperation("rwkvc is built from the rwkv.c repository (make, then pip install ./python); "
                               "it has no source distribution of its own")

"""Shared setup of the Python package's tests.

- RWKVC_TEST_NUMPY=0 hides numpy before rwkvc is imported, so the whole
  suite runs once more on the memoryview path.
- Every test result is printed as one line, "PASS|FAIL|SKIP python[MODE] NAME",
  the lines tests/run.sh counts.
- Fixtures: the rwkv command (the reference the package is compared with),
  tiny models made with `rwkv init`, and the shared reference files when the
  checkout has them (tests needing them are skipped otherwise).
"""

import os
import subprocess
import sys

import pytest

if os.environ.get("RWKVC_TEST_NUMPY") == "0":
    sys.modules["numpy"] = None  # `import numpy` now raises ImportError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODE = os.environ.get("RWKVC_TEST_MODE", "numpy" if os.environ.get("RWKVC_TEST_NUMPY") != "0" else "buffers")
SHARED = os.environ.get("RWKV_SHARED", os.path.join(REPO, "..", "shared"))


def _name(report):
    return f"python[{MODE}] {report.nodeid.split('tests/python/', 1)[-1]}"


def _first_line(text):
    lines = [line for line in str(text).splitlines() if line.strip()]
    return lines[0].strip()[:300] if lines else ""


def pytest_runtest_logreport(report):
    """One PASS/FAIL/SKIP line per test for tests/run.sh."""
    reporter = _config[0].pluginmanager.getplugin("terminalreporter")
    if report.failed:
        message = report.longrepr.reprcrash.message if hasattr(report.longrepr, "reprcrash") else report.longrepr
        reporter.write_line(f"FAIL {_name(report)} ({report.when}): {_first_line(message)}")
    elif report.skipped and report.when in ("setup", "call"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        reporter.write_line(f"SKIP {_name(report)}: {_first_line(reason).removeprefix('Skipped: ')}")
    elif report.passed and report.when == "call":
        reporter.write_line(f"PASS {_name(report)}")


_config = [None]


def pytest_report_teststatus(report, config):
    """No progress letters: the PASS/FAIL/SKIP lines stand in for them."""
    if report.when == "call" or report.failed or report.skipped:
        return report.outcome, "", report.outcome.upper()
    return None


def pytest_configure(config):
    _config[0] = config


@pytest.fixture(scope="session")
def cli():
    """Runs the rwkv command: cli(*args, input=None) -> stdout bytes (a non-zero exit fails the test)."""
    path = os.path.abspath(os.path.join(REPO, os.environ.get("RWKVC_TEST_CLI", "./rwkv")))
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} is not built")

    def run(*args, input=None):
        done = subprocess.run([path, *map(str, args)], input=input, capture_output=True, timeout=300)
        assert done.returncode == 0, f"rwkv {' '.join(map(str, args))}: {done.stderr.decode(errors='replace')}"
        return done.stdout

    run.path = path
    return run


@pytest.fixture(scope="session")
def models(cli, tmp_path_factory):
    """Tiny models written by `rwkv init`: {"rwkv4": path, "gpt": path}."""
    folder = tmp_path_factory.mktemp("models")
    rwkv4 = folder / "rwkv4.safetensors"
    gpt = folder / "gpt.safetensors"
    cli("init", "--layers", 2, "--embd", 32, "--vocab", 256, "--seed", 3, "--out", rwkv4)
    cli("init", "--arch", "gpt", "--layers", 2, "--embd", 32, "--heads", 2, "--ctx", 48, "--vocab", 256, "--seed", 5,
        "--out", gpt)
    return {"rwkv4": str(rwkv4), "gpt": str(gpt)}


def shared_file(relative):
    """The path of a shared reference file; the test is skipped when the checkout has none."""
    path = os.path.join(SHARED, relative)
    if not os.path.exists(path):
        pytest.skip(f"shared file {relative} not found")
    return path

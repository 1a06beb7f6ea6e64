#!/bin/sh
# Tests of the Python package (python/rwkvc) under pytest, run twice: with
# numpy (arrays) and with numpy hidden (memoryviews). conftest.py prints one
# PASS/FAIL/SKIP line per test, the lines tests/run.sh counts.
#   sh tests/python/run.sh [./rwkv]     (from the repository root)
# The interpreter is /usr/bin/python3 (Debian's, where python3-pytest and
# python3-numpy install); PYTHON=... picks another.
RWKV=${1:-./rwkv}
PYTHON=${PYTHON:-/usr/bin/python3}
if [ ! -x "$PYTHON" ]; then
    echo "SKIP python: $PYTHON not found"
    exit 0
fi
if ! "$PYTHON" -c "import pytest" 2>/dev/null; then
    echo "SKIP python: pytest is not installed for $PYTHON (Debian: python3-pytest)"
    exit 0
fi
if [ ! -f python/rwkvc/librwkv.so ]; then
    echo "FAIL python: python/rwkvc/librwkv.so is missing (run make)"
    exit 1
fi
status=0
for numpy in 1 0; do
    mode=$([ $numpy = 1 ] && echo numpy || echo buffers)
    if [ $numpy = 1 ] && ! "$PYTHON" -c "import numpy" 2>/dev/null; then
        echo "SKIP python[numpy]: numpy is not installed for $PYTHON (Debian: python3-numpy)"
        continue
    fi
    RWKVC_TEST_NUMPY=$numpy RWKVC_TEST_MODE=$mode RWKVC_TEST_CLI=$RWKV PYTHONPATH=python${PYTHONPATH:+:$PYTHONPATH} \
        PYTHONDONTWRITEBYTECODE=1 "$PYTHON" -m pytest -q -p no:cacheprovider tests/python || status=1
done
exit $status

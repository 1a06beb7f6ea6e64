"""rwkvc: RWKV language models from Python, over the rwkv.c library (librwkv).

Load any checkpoint librwkv reads (RWKV-4/5/6/7 or the GPT baseline;
safetensors, PyTorch .pth or rwkv.cpp files), generate text, score
perplexity and LAMBADA, train small models — no PyTorch needed::

    import rwkvc
    m = rwkvc.Model("model.safetensors", threads=2)
    print("".join(m.generate("Hello", max_tokens=16, temperature=0.0)))
    print(m.perplexity("Some text to score."))

Logits and states are numpy arrays when numpy is installed (without
copies), Python memoryviews of floats otherwise. Errors of the library are
raised as RwkvError subclasses carrying its one-line message.
"""

from . import _lib
from ._buffers import HAVE_NUMPY
from .errors import (ArgumentError, FormatError, NumericError, OutOfMemoryError, RwkvError, RwkvIOError, ShapeError,
                     UnsupportedError)
from .evaluation import LambadaResult, LambadaStep, PerplexityResult
from .generation import Generation
from .model import Model, ModelInfo, State, convert_to_hf, convert_to_safetensors
from .sampler import Sampler
from .tokenizer import Tokenizer, TokenStream
from .train import TrainProgress, init_model, resume, tokenize_file, train

#: The version of the loaded librwkv, which is this package's version.
__version__ = _lib.lib.rwkv_version().decode()

#: The path of the librwkv.so this package loads (the copy made when the package was built).
LIBRARY_PATH = _lib.LIBRARY_PATH

__all__ = ["ArgumentError", "FormatError", "Generation", "HAVE_NUMPY", "LIBRARY_PATH", "LambadaResult",
           "LambadaStep", "Model", "ModelInfo", "NumericError", "OutOfMemoryError", "PerplexityResult",
           "RwkvError", "RwkvIOError", "Sampler", "ShapeError", "State", "TokenStream", "Tokenizer",
           "TrainProgress", "UnsupportedError", "__version__", "convert_to_hf", "convert_to_safetensors", "init_model",
           "resume", "tokenize_file", "train"]

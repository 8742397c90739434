"""The PyTorch adapter (``TorchAdapter``): state_dicts and training checkpoints.

Modules: ``state_dict`` (read/write), ``layouts`` (the dict layouts people save),
``safety`` (pickles without code execution), ``numpy_bridge`` (torch <-> numpy),
``models``/``model_inputs`` (build and feed the model a spec names) and
``runner`` (torch eager). Importing this package imports no framework.
"""

from portability.adapters.torch.adapter import TorchAdapter

__all__ = ["TorchAdapter"]

"""Format adapters, installed as ``portability.adapters``.

One package per format, each implementing the contract in ``base.py``
(``FormatAdapter``: detect / read / write / runner, capabilities as class
attributes) and registering itself with ``@register_format``. Importing this
package registers every format and imports no framework; adapters load theirs
inside their methods. Framework types never leave an adapter; numpy arrays do.
"""

from portability.adapters.base import FormatAdapter, register_format, registered_formats
from portability.adapters.dcp import DcpAdapter
from portability.adapters.onnx import OnnxAdapter
from portability.adapters.safetensors import SafetensorsAdapter
from portability.adapters.tf_savedmodel import TFSavedModelAdapter
from portability.adapters.torch import TorchAdapter

__all__ = ["FormatAdapter", "register_format", "registered_formats", "TorchAdapter", "SafetensorsAdapter",
           "OnnxAdapter", "TFSavedModelAdapter", "DcpAdapter"]

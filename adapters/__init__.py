"""Format adapters, installed as ``portability.adapters``.

Each adapter is one module (or a small package) with the same functions:
``read(path, options) -> Checkpoint`` and ``write(ckpt, path, options)``, plus
``runner(...)`` where the format has a runtime. Framework types never leave an
adapter; numpy arrays do.
"""

"""Deployment environments: judge each route's artifact in the software it will run in.

- ``spec``: parse ``--env NAME=SPEC`` (requirements, ``@file``, ``python:PATH``);
- ``builder``: build them with uv, cached under the portability cache, and ask them
  what they run (``Env``);
- ``runner``: the standalone runner copied into each environment (numpy + the runtime);
- ``session``: load and run an artifact there, plain data both ways;
- ``targets``: what an environment's runtimes read (ONNX IR/opset), for ``--target-env``;
- ``matrix``: run this project's suite on the lowest or newest versions of its ranges.
"""

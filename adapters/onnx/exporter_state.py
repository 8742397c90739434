"""Drop what the exporter's libraries keep of the last model exported.

onnxscript's rewriter (0.7) keeps rule objects for the life of the process
(module-level rule sets and cached ones), and each rule's pattern matcher keeps
the graph it last matched (``_graph``) and that match's result (``_match``,
whose partial matches hold its nodes) until its next match. That graph's
initializers wrap the exported model's torch parameters, so after an export a
worker went on holding the whole model (measured: 1.4x a GPT-2 checkpoint's
bytes, for the rest of the worker's life). ``release`` clears those references;
a matcher sets them again when it next matches.
"""

from __future__ import annotations

import gc


def release() -> int:
    """Clear every live pattern matcher's references to the last graph it matched.

    Returns:
        How many matchers held one.
    """
    try:
        import onnx_ir as ir
        from onnxscript.rewriter import _basics, _matcher
    except ImportError:  # another onnxscript layout: nothing known to clear
        return 0
    held = (ir.Graph, ir.Function, ir.Node, ir.Model, _basics.MatchResult, _basics.PartialMatchResult)
    cleared = 0
    for obj in gc.get_objects():
        # type(), not isinstance(): gc lists weakref proxies too, and isinstance() on one
        # whose referent is gone raises ReferenceError.
        if not issubclass(type(obj), _matcher.PatternMatcher):
            continue
        stale = [attr for attr, value in vars(obj).items() if isinstance(value, held)]
        for attr in stale:
            setattr(obj, attr, None)
        cleared += bool(stale)
    return cleared

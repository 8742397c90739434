"""Frameworks that crash when loaded in one order are loaded in the other: importing
TensorFlow first imports triton when it is installed (torch's CUDA wheels bring it)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def _run(tmp_path, code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *(p for p in sys.path if p)])}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, timeout=120)


def test_the_second_module_is_imported_before_the_trigger(tmp_path):
    (tmp_path / "fake_trigger.py").write_text(
        "import sys\nLOADED_BEFORE = sorted(m for m in sys.modules if m.startswith('fake_') and m != __name__)\n")
    (tmp_path / "fake_first.py").write_text("")
    done = _run(tmp_path, """
        import sys
        from portability.core.import_order import ImportFirst
        sys.meta_path.insert(0, ImportFirst("fake_trigger", "fake_first"))
        import fake_trigger
        print(fake_trigger.LOADED_BEFORE, any(getattr(f, "trigger", "") == "fake_trigger" for f in sys.meta_path))
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['fake_first'] False"


def test_a_missing_or_broken_first_module_does_not_stop_the_import(tmp_path):
    (tmp_path / "fake_trigger.py").write_text("")
    (tmp_path / "fake_broken.py").write_text("raise RuntimeError('broken on import')\n")
    done = _run(tmp_path, """
        import sys
        from portability.core.import_order import ImportFirst
        sys.meta_path.insert(0, ImportFirst("fake_trigger", "fake_missing_module"))
        sys.meta_path.insert(0, ImportFirst("fake_trigger", "fake_broken"))
        import fake_trigger
        print("imported", "fake_broken" in sys.modules)
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "imported False"


def test_importing_portability_installs_the_guard_and_imports_no_framework(tmp_path):
    done = _run(tmp_path, """
        import sys
        import portability
        from portability.core.import_order import ImportFirst
        hooks = [(f.trigger, f.first) for f in sys.meta_path if isinstance(f, ImportFirst)]
        heavy = [m for m in ("torch", "tensorflow", "triton", "onnx", "ml_dtypes") if m in sys.modules]
        print(hooks, heavy)
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[('tensorflow', 'triton')] []"

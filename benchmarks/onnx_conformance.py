"""Census of the ONNX -> TF translator against ONNX's node conformance cases.

Runs every single-op case of the 99 yardstick op types (the runner is
``portability.adapters.tf_savedmodel.conformance``, shared with the
``conformance`` test tier), then prints a per-op table (op | cases | passed | %),
the failing cases with their reasons (known gaps marked), what was measured
(case count, collection and run time, CPU time) and one summary line:

    conformance: N/M cases passed (P%), K/99 ops at 100%, min op X%

Usage: python benchmarks/onnx_conformance.py [--failures] [OP ...]
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ops", nargs="*", help="only these op types (default: the 99 of the yardstick)")
    parser.add_argument("--failures", action="store_true", help="list every failing case and why")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    started, cpu_started = time.perf_counter(), time.process_time()
    from portability.adapters.tf_savedmodel import conformance
    from portability.adapters.tf_savedmodel.ops.known_gaps import KNOWN_GAPS

    ops = args.ops or list(conformance.YARDSTICK_OPS)
    cases = conformance.collect(ops)
    collected = time.perf_counter()
    outcomes = [conformance.run_case(case) for case in cases]
    finished = time.perf_counter()

    per_op: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for outcome in outcomes:
        per_op[outcome.op][0] += 1
        per_op[outcome.op][1] += outcome.passed
    print(f"{'op':<24} | {'cases':>5} | {'passed':>6} | {'%':>6}")
    print("-" * 51)
    for op in ops:
        total, passed = per_op[op]
        share = f"{100 * passed / total:.1f}" if total else "-"
        print(f"{op:<24} | {total:>5} | {passed:>6} | {share:>6}")
    failures = [o for o in outcomes if not o.passed]
    if args.failures:
        print("\nfailing cases:")
        for outcome in failures:
            tag = "known gap" if outcome.case in KNOWN_GAPS else "UNEXPECTED"
            print(f"  {outcome.case} [{tag}]: {outcome.error}")
    unexpected = [o.case for o in failures if o.case not in KNOWN_GAPS]
    fixed = [o.case for o in outcomes if o.passed and o.case in KNOWN_GAPS]
    passed = sum(o.passed for o in outcomes)
    shares = [p / t for t, p in (per_op[op] for op in ops) if t]
    full = sum(1 for t, p in (per_op[op] for op in ops) if t and p == t)
    print(f"\nmeasured: {len(cases)} single-op cases of {len(ops)} op types "
          f"({sum(1 for op in ops if not per_op[op][0])} without cases); "
          f"collecting {collected - started:.1f} s, translating+running {finished - collected:.1f} s, "
          f"CPU {time.process_time() - cpu_started:.1f} s")
    print(f"failures: {len(failures)} ({len(failures) - len(unexpected)} listed in ops/known_gaps.py, "
          f"{len(unexpected)} unexpected); listed cases now passing: {len(fixed)}")
    for name in unexpected + fixed:
        print(f"  {'UNEXPECTED FAILURE' if name in unexpected else 'NOW PASSES'}: {name}")
    print(f"conformance: {passed}/{len(outcomes)} cases passed ({100 * passed / max(len(outcomes), 1):.1f}%), "
          f"{full}/{len(ops)} ops at 100%, min op {100 * min(shares, default=0):.1f}%")
    return 1 if unexpected or fixed else 0


if __name__ == "__main__":
    sys.exit(main())

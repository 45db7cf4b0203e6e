"""A small workflow with a progress bar and a drawing of its dependency graph.

    python examples/progress_and_graph.py            # writes workflow.dot
    python examples/progress_and_graph.py graph.svg  # needs the 'graph' extra + dot

The bar shows on a terminal only (done / cached / failed / running / waiting);
the second run counts every call as cached.  The graph is drawn at shutdown and
the calls still run (unlike executorlib's plot_dependency_graph).
"""

import sys
import time

from executorlib_cache import SingleNodeExecutor, progress


def prepare(sample: int) -> list[float]:
    time.sleep(0.1)
    return [sample * 0.5 + i for i in range(10)]


def analyse(data: list[float]) -> float:
    time.sleep(0.1)
    return sum(data) / len(data)


def report(means: list[float]) -> str:
    return ", ".join(f"{m:.2f}" for m in means)


if __name__ == "__main__":
    graph_file = sys.argv[1] if len(sys.argv) > 1 else "workflow.dot"
    with SingleNodeExecutor(progress=True, plot_dependency_graph_filename=graph_file) as exe:
        prepared = [exe.submit(prepare, s) for s in range(6)]
        means = [exe.submit(analyse, p) for p in prepared]
        summary = exe.submit(report, means)
        progress(means, description="analysis")  # a bar for just these six
        print("means:", summary.result())
    print(f"dependency graph written to {graph_file}")

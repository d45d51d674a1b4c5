"""Measuring tools for the edge daemon: ``edge-bench pipeline|report|soak|latency``.

* :mod:`edge_bench.pipeline`: the full analysis pipeline as fast as possible on a file;
* :mod:`edge_bench.report`: every performance target measured, written as Markdown;
* :mod:`edge_bench.soak`: the real daemon for a long time, memory and descriptors sampled;
* :mod:`edge_bench.latency`: per-face latency of an ONNX emotion model.

These tools depend on the runtime package :mod:`edge_daemon`; the runtime never imports
them (nor the trainer), so a deployed daemon carries no benchmark code. Their own extra
dependencies (matplotlib for the report's plots) come with the ``bench`` extra:
``pip install 'edge-daemon[bench]'``.
"""

"""The app layer, above every stage: it owns them, they never import it.

- ``daemon.py``: :class:`~edge_daemon.app.daemon.App`, the one owner of start-up and
  shutdown order, the main loop (stats, watchdog, reloads) and health.
- ``wiring.py``: validated config -> the stages' own settings types (pure functions).
- ``reload_plan.py``: old config, new config -> what to start, stop and restart (pure).
- ``cli.py``: ``edge-daemon run | validate-config | watch | version``.

Nothing is imported here, so ``edge-daemon version`` does not load the pipeline.
"""

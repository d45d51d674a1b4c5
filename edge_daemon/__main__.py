from edge_daemon.app.cli import main

raise SystemExit(main())

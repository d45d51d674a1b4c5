from edge_daemon.cli import main

raise SystemExit(main())

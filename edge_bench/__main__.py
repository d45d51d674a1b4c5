from edge_bench.cli import main

raise SystemExit(main())

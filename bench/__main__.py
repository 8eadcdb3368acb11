from __future__ import annotations

from bench.ingest import main

raise SystemExit(main())

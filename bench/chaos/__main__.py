from __future__ import annotations

from bench.chaos.cli import main

raise SystemExit(main())

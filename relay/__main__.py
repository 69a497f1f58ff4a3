"""`python -m relay`: see relay.process."""

from relay.process import main

raise SystemExit(main())

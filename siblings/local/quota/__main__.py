"""``python -m siblings.local.quota``: the moto server behind a quota layer (see :func:`main`)."""

import sys

from siblings.local.quota.process import main

sys.exit(main())

import sys

from underpaint.cli import main

sys.exit(main())

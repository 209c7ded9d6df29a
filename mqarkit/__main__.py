import sys

from mqarkit.cli import main

sys.exit(main())

import sys

from gameserver.cli import main

sys.exit(main())

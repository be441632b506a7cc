import sys

from realtime_fer.cli import main

sys.exit(main())

import sys

from cowdsl.cli import main

sys.exit(main())

import sys

from cowdsl.kernels.cli import main

sys.exit(main())

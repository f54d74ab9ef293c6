import sys

from chargeport_cli.cli import main

sys.exit(main())

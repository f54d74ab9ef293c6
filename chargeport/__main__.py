import sys

from chargeport.cli import main

sys.exit(main())

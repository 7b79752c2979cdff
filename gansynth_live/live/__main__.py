"""python -m gansynth_live.live: the same as gansynth-live."""
import sys

from gansynth_live.live.cli import main

sys.exit(main())

"""``python -m fraud_detection``, and the detector image's spark-submit main file (``/opt/fraud-detection/main.py``):
the ``fraud-detection`` command, whose first argument names the subcommand (the SparkApplication passes ``detect``).
"""

import sys

from fraud_detection.cli import main

if __name__ == "__main__":
    sys.exit(main())

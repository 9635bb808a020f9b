"""The detector as a spark-submit main file: ``spark-submit .../detector/__main__.py [detect flags]``.

The SparkApplication (charts/fraud-detection/templates/detector.yaml) names this file; its arguments are
those of ``fraud-detection detect``. ``python -m fraud_detection.detector`` works the same way.
"""

import sys

from fraud_detection.cli import main

if __name__ == "__main__":
    sys.exit(main(["detect", *sys.argv[1:]]))

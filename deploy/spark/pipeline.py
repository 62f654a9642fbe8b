"""The pipeline as a spark-submit application: ``spark-submit ... pipeline.py [ARGS]``.

Runs ``quantserve pipeline`` (ingest, Spark features, training, promotion) in the
spark-submit driver, so the feature job's executors run on the cluster that
``--master`` names. Set ``QUANTSERVE_SPARK__MASTER`` to the same master: the feature
job builds its session from the settings.
"""

from __future__ import annotations

import sys

from app.cli import main

if __name__ == "__main__":
    sys.argv = ["quantserve", "pipeline", *sys.argv[1:]]
    main()

"""bfgg's check of a locustfile, run once on each agent before a run starts.

    python inspect.py LOCUSTFILE

Imports Locust and the locustfile the way Locust does (so a syntax error or a
missing import shows here, before the start instant) and prints one JSON
line: {"locust": version, "python": version, "users": [User class names],
"shapes": [LoadTestShape class names]}. Exits 3 if Locust cannot be
imported and 4 if the locustfile cannot, with the Python error on stderr.
"""

import json
import sys
import traceback

try:
    import locust
    from locust.util.load_locustfile import load_locustfile
except Exception:
    traceback.print_exc()
    sys.exit(3)

try:
    users, shapes = load_locustfile(sys.argv[1])
except BaseException:
    traceback.print_exc()
    sys.exit(4)

print(
    json.dumps(
        {
            "locust": locust.__version__,
            "python": "%d.%d.%d" % sys.version_info[:3],
            "users": sorted(users),
            "shapes": [type(s).__name__ for s in shapes],
        }
    )
)

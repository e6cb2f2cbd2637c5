"""A stand-in for your app: it reports which variables it got, not their values."""

import os

for name in ("DATABASE_URL", "API_KEY", "LOG_LEVEL"):
    value = os.environ.get(name)
    print(f"{name}: {'set, ' + str(len(value)) + ' characters' if value is not None else 'missing'}")

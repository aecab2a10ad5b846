"""Settings of the Django Q2 peer: a SQLite database (BENCH_SQLITE) for results, and either the
Redis broker (BENCH_REDIS_URL) or the ORM broker on that database (BENCH_DJQ_BROKER=orm).
Django Q2's defaults otherwise, except that every success is kept (save_limit 0) so that the
benchmark can count them."""

import os

SECRET_KEY = "wasq-bench-not-secret"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["django_q"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("BENCH_SQLITE", "bench.sqlite3"),
        # Workers, monitor and producer share the file: wait for the lock instead of failing.
        "OPTIONS": {"timeout": 30},
    }
}

Q_CLUSTER = {
    "name": "bench",
    "workers": int(os.environ.get("BENCH_WORKERS", "4")),
    "save_limit": 0,
    "timeout": 300,
    "retry": 360,
    "max_attempts": 1,
    "catch_up": False,
    "log_level": "WARNING",
}
if os.environ.get("BENCH_DJQ_BROKER") == "orm":
    Q_CLUSTER["orm"] = "default"
else:
    Q_CLUSTER["redis"] = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/4")

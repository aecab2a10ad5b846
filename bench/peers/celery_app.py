"""The Celery app of the benchmark: Redis broker (BENCH_BROKER_URL) and Redis result backend
(BENCH_BACKEND_URL), with the tasks of pytasks registered under their own names."""

import os

from celery import Celery

import pytasks

app = Celery(
    "bench",
    broker=os.environ["BENCH_BROKER_URL"],
    backend=os.environ["BENCH_BACKEND_URL"],
)
app.conf.update(
    task_default_queue="bench",
    result_expires=3600,
    broker_connection_retry_on_startup=True,
)

noop = app.task(name="noop")(pytasks.noop)
stamp = app.task(name="stamp")(pytasks.stamp)
fib = app.task(name="fib")(pytasks.fib)
render = app.task(name="render")(pytasks.render)

"""One workload on one Python task queue, for `cargo xtask bench` (run by wasq-bench).

    python peer.py --system {celery,rq,djq-redis,djq-orm} --workload {noop,latency,fib,markdown,memory}
                   --tasks N --workers W --redis-url URL --workdir DIR --doc FILE
                   [--samples S] [--queued Q] [--timeout SECONDS]

It starts the queue's own workers, sends one warm-up task, then enqueues and counts the results
in the queue's own result store, exactly as wasq-bench does for wasq. Progress goes to stderr;
the last line of stdout is one JSON object (see bench/src/report.rs); the exit status is 0 only
when every task was accounted for. Workers are always stopped, also on errors and Ctrl-C.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
POLL = 0.010  # seconds between counts of the result store
FAST_POLL = 0.001  # seconds between looks for one result (latency)


def log(message):
    print(message, file=sys.stderr, flush=True)


def redis_db(url, db):
    """`url` with its database number replaced by `db`."""
    base = url.split("?")[0].rstrip("/")
    scheme, rest = base.split("://", 1)
    host = rest.split("/", 1)[0]
    return f"{scheme}://{host}/{db}"


# --- process trees -------------------------------------------------------------------------


def children_of():
    """{parent pid: [child pids]} of every process."""
    tree = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        parent = int(stat[stat.rfind(")") + 2 :].split()[1])
        tree.setdefault(parent, []).append(int(entry))
    return tree


def process_kib(pid):
    """Proportional set size (Pss), or resident set size where smaps_rollup is missing."""
    for name, field in (("smaps_rollup", "Pss:"), ("status", "VmRSS:")):
        try:
            with open(f"/proc/{pid}/{name}") as f:
                for line in f:
                    if line.startswith(field):
                        return int(line.split()[1])
        except OSError:
            continue
    return 0


def tree_kib(roots):
    """Kibibytes used by the processes `roots` and all their descendants."""
    tree = children_of()
    total, stack = 0, list(roots)
    while stack:
        pid = stack.pop()
        total += process_kib(pid)
        stack.extend(tree.get(pid, []))
    return total


class Workers:
    """Worker processes, each in its own process group, logging to files in the workdir."""

    def __init__(self, commands, env, workdir):
        self.procs = []
        self.logs = []
        for i, command in enumerate(commands):
            path = Path(workdir) / f"worker-{len(self.logs)}-{i}.log"
            self.logs.append(path)
            with open(path, "ab") as out:
                self.procs.append(
                    subprocess.Popen(
                        command,
                        cwd=HERE,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )

    def pids(self):
        return [p.pid for p in self.procs]

    def check(self):
        for proc, path in zip(self.procs, self.logs):
            if proc.poll() is not None:
                raise RuntimeError(f"a worker exited ({proc.returncode}): {tail(path)}")

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.time() + 10
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()


def tail(path, lines=3):
    try:
        text = Path(path).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


# --- the systems ---------------------------------------------------------------------------


class Celery:
    """Celery, Redis broker (db 1) and Redis result backend (db 2), prefork pool."""

    broker = "redis"
    result_store = "redis"
    enqueue_method = "apply_async per task"

    def __init__(self, args):
        import redis

        self.args = args
        self.broker_url = redis_db(args.redis_url, 1)
        self.backend_url = redis_db(args.redis_url, 2)
        os.environ["BENCH_BROKER_URL"] = self.broker_url
        os.environ["BENCH_BACKEND_URL"] = self.backend_url
        self.results = redis.Redis.from_url(self.backend_url)
        redis.Redis.from_url(self.broker_url).flushdb()
        self.results.flushdb()
        sys.path.insert(0, str(HERE))
        import celery_app

        self.app = celery_app

    def version(self):
        return f"celery {version('celery')}"

    def worker_commands(self):
        return [
            [
                sys.executable, "-m", "celery", "-A", "celery_app", "worker",
                "--concurrency", str(self.args.workers), "--pool", "prefork",
                "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
                "--without-heartbeat", "-Q", "bench",
            ]
        ]

    def enqueue(self, name, args):
        return getattr(self.app, name).apply_async(args)

    def enqueue_many(self, name, args, n):
        return [self.enqueue(name, args) for _ in range(n)]

    def counts(self):
        """(successes, failures): every key in the backend's db is one task's result."""
        return self.results.dbsize(), 0

    def clear(self):
        self.results.flushdb()

    def value(self, handle, timeout):
        """The task's result, waiting up to `timeout` (pub/sub on the Redis backend)."""
        return handle.get(timeout=timeout)

    def peek(self, handle):
        return handle.result if handle.successful() else None


class Rq:
    """RQ on Redis db 3, W `rq worker` processes (a forked work horse per job, the default)."""

    broker = "redis"
    result_store = "redis"
    enqueue_method = "Queue.enqueue_many, 1,000 per pipeline"

    def __init__(self, args):
        import redis
        import rq

        self.args = args
        self.url = redis_db(args.redis_url, 3)
        self.conn = redis.Redis.from_url(self.url)
        self.conn.flushdb()
        sys.path.insert(0, str(HERE))
        import pytasks

        self.tasks = pytasks
        self.queue = rq.Queue("bench", connection=self.conn)

    def version(self):
        return f"rq {version('rq')}"

    def worker_commands(self):
        rq = str(Path(sys.executable).parent / "rq")
        return [
            [rq, "worker", "bench", "--url", self.url, "--quiet", "--path", str(HERE)]
            for _ in range(self.args.workers)
        ]

    def enqueue(self, name, args):
        return self.queue.enqueue(getattr(self.tasks, name), *args)

    def enqueue_many(self, name, args, n):
        from rq import Queue

        jobs = []
        while len(jobs) < n:
            batch = [
                Queue.prepare_data(getattr(self.tasks, name), args=args)
                for _ in range(min(1000, n - len(jobs)))
            ]
            with self.conn.pipeline() as pipe:
                jobs.extend(self.queue.enqueue_many(batch, pipeline=pipe))
                pipe.execute()
        return jobs

    def counts(self):
        return self.queue.finished_job_registry.count, self.queue.failed_job_registry.count

    def clear(self):
        registry = self.queue.finished_job_registry
        for job_id in registry.get_job_ids():
            registry.remove(job_id, delete_job=True)

    def value(self, job, timeout):
        result = job.latest_result(timeout=timeout)
        if result is None:
            raise TimeoutError(f"no result for job {job.id} after {timeout} s")
        return result.return_value

    def peek(self, job):
        result = job.latest_result()
        return None if result is None else result.return_value


class DjangoQ:
    """Django Q2's cluster (`manage.py qcluster`): Redis broker on db 4, or the ORM broker; the
    results in Django's database, a SQLite file."""

    result_store = "django orm (sqlite)"
    enqueue_method = "async_task per task"

    def __init__(self, args, broker):
        self.args = args
        self.broker = "redis" if broker == "redis" else "django orm (sqlite)"
        os.environ["DJANGO_SETTINGS_MODULE"] = "djq_project.settings"
        os.environ["BENCH_SQLITE"] = str(Path(args.workdir) / "django.sqlite3")
        os.environ["BENCH_WORKERS"] = str(args.workers)
        os.environ["BENCH_DJQ_BROKER"] = broker
        os.environ["BENCH_REDIS_URL"] = redis_db(args.redis_url, 4)
        if broker == "redis":
            import redis

            redis.Redis.from_url(redis_db(args.redis_url, 4)).flushdb()
        Path(os.environ["BENCH_SQLITE"]).unlink(missing_ok=True)
        sys.path.insert(0, str(HERE))
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        from django_q import models, tasks

        self.models = models
        self.tasks = tasks

    def version(self):
        return f"django-q2 {version('django-q2')} (Django {version('django')})"

    def worker_commands(self):
        return [[sys.executable, "manage.py", "qcluster"]]

    def enqueue(self, name, args):
        return self.tasks.async_task(f"pytasks.{name}", *args)

    def enqueue_many(self, name, args, n):
        return [self.enqueue(name, args) for _ in range(n)]

    def counts(self):
        return self.models.Success.objects.count(), self.models.Failure.objects.count()

    def clear(self):
        self.models.Task.objects.all().delete()

    def peek(self, task_id):
        row = self.models.Task.objects.filter(id=task_id).values_list("success", "result").first()
        if row is None:
            return None
        if not row[0]:
            raise RuntimeError(f"task {task_id} failed: {row[1]}")
        return row[1]

    def value(self, task_id, timeout):
        """Polls the ORM every millisecond (django_q.tasks.result(wait=) sleeps 10 ms a turn)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = self.peek(task_id)
            if value is not None:
                return value
            time.sleep(FAST_POLL)
        raise TimeoutError(f"no result for task {task_id} after {timeout} s")


def make_system(args):
    if args.system == "celery":
        return Celery(args)
    if args.system == "rq":
        return Rq(args)
    if args.system in ("djq-redis", "djq-orm"):
        return DjangoQ(args, "redis" if args.system == "djq-redis" else "orm")
    raise ValueError(f"unknown system {args.system}")


# --- the workloads -------------------------------------------------------------------------


def start(system, args):
    """Starts the workers and waits for one warm-up task; the result store is then emptied."""
    workers = Workers(system.worker_commands(), dict(os.environ), args.workdir)
    try:
        handle = system.enqueue("noop", [])
        deadline = time.time() + 120
        while True:
            workers.check()
            successes, _ = system.counts()
            if successes >= 1:
                break
            if time.time() > deadline:
                raise RuntimeError(f"the warm-up task did not finish in 120 s: {tail(workers.logs[0])}")
            time.sleep(POLL)
        del handle
        system.clear()
        return workers
    except BaseException:
        workers.stop()
        raise


def wait_for(system, workers, target, timeout, sample=None):
    """Counts successes every 10 ms until `target` (or a failure, or the timeout)."""
    deadline = time.time() + timeout
    while True:
        successes, failures = system.counts()
        if successes >= target:
            return successes
        if failures:
            raise RuntimeError(f"{failures} tasks failed")
        if time.time() > deadline:
            return successes
        workers.check()
        if sample:
            sample()
        time.sleep(POLL)


CHECKS = {
    "noop": lambda v: v is None,
    "fib": lambda v: v == 75025,
    "markdown": lambda v: isinstance(v, str) and "<h1" in v and "<table>" in v,
}


def throughput(system, args, out):
    doc = Path(args.doc).read_text()
    name, task_args = {"noop": ("noop", []), "fib": ("fib", [25]), "markdown": ("render", [doc])}[
        args.workload
    ]
    out["tasks"] = args.tasks
    workers = start(system, args)
    try:
        t0 = time.time()
        handles = system.enqueue_many(name, task_args, args.tasks)
        out["enqueue_s"] = time.time() - t0
        out["counted"] = wait_for(system, workers, args.tasks, args.timeout)
        out["total_s"] = time.time() - t0
        for handle in (handles[0], handles[len(handles) // 2], handles[-1]):
            value = system.peek(handle)
            if not CHECKS[args.workload](value):
                raise RuntimeError(f"a task returned an unexpected result: {str(value)[:80]}")
    finally:
        workers.stop()


def quantile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, round((len(values) - 1) * q))]


def latency(system, args, out):
    out["tasks"] = args.samples
    out["enqueue_method"] = system.enqueue_method.replace("per task", "one task at a time")
    workers = start(system, args)
    to_start, to_result = [], []
    try:
        for _ in range(args.samples):
            enqueued = time.time()
            handle = system.enqueue("stamp", [])
            started = system.value(handle, 30)
            seen = time.time()
            to_start.append((float(started) - enqueued) * 1000)
            to_result.append((seen - enqueued) * 1000)
            out["counted"] += 1
            time.sleep(0.005)
    finally:
        workers.stop()
    out["latency"] = {
        "samples": args.samples,
        "start_p50_ms": quantile(to_start, 0.5),
        "start_p99_ms": quantile(to_start, 0.99),
        "result_p50_ms": quantile(to_result, 0.5),
        "result_p99_ms": quantile(to_result, 0.99),
    }


def memory(system, args, out):
    out["tasks"] = args.queued
    workers = start(system, args)
    try:
        time.sleep(2)
        idle = tree_kib(workers.pids())
    finally:
        workers.stop()
    system.clear()
    system.enqueue_many("noop", [], args.queued)
    workers = Workers(system.worker_commands(), dict(os.environ), args.workdir)
    peak = 0

    def sample():
        nonlocal peak
        peak = max(peak, tree_kib(workers.pids()))

    try:
        out["counted"] = wait_for(system, workers, args.queued, args.timeout, sample)
    finally:
        workers.stop()
    out["memory"] = {"idle_kib": idle, "loaded_kib": peak, "queued": args.queued}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--system", required=True, choices=["celery", "rq", "djq-redis", "djq-orm"])
    parser.add_argument(
        "--workload", required=True, choices=["noop", "latency", "fib", "markdown", "memory"]
    )
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--queued", type=int, default=10000)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--doc", required=True)
    args = parser.parse_args()
    Path(args.workdir).mkdir(parents=True, exist_ok=True)

    out = {
        "system": args.system, "workload": args.workload, "version": "", "broker": "",
        "result_store": "", "enqueue_method": "", "workers": args.workers, "tasks": 0,
        "counted": 0, "missing": 0, "enqueue_s": None, "total_s": None, "enqueue_per_s": None,
        "per_s": None, "latency": None, "memory": None, "error": None,
    }
    # SIGTERM from wasq-bench ends the run like Ctrl-C: workers are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        system = make_system(args)
        out.update(
            version=system.version(),
            broker=system.broker,
            result_store=system.result_store,
            enqueue_method=out["enqueue_method"] or system.enqueue_method,
        )
        log(f"{args.system}: {args.workload} with {args.workers} workers")
        {"latency": latency, "memory": memory}.get(args.workload, throughput)(system, args, out)
    except KeyboardInterrupt:
        out["error"] = "interrupted"
    except Exception as error:  # noqa: BLE001 - every failure becomes the run's one-line error
        out["error"] = f"{type(error).__name__}: {error}".replace("\n", " ")[:500]
    out["missing"] = max(0, out["tasks"] - out["counted"])
    if out["error"] is None and out["missing"]:
        out["error"] = f"{out['missing']} of {out['tasks']} results missing from its result store"
    if out["error"] is None and out["total_s"]:
        out["per_s"] = out["tasks"] / out["total_s"]
    if out["enqueue_s"]:
        out["enqueue_per_s"] = out["tasks"] / out["enqueue_s"]
    print(json.dumps(out), flush=True)
    return 0 if out["error"] is None else 1


if __name__ == "__main__":
    sys.exit(main())

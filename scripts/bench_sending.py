#!/usr/bin/env python
"""`make bench-sending`: how fast reminders go out, against the per-order design in the same run.

Writes docs/benchmarks-sending.md (only that file). Uses scripts/bench.py's database (`<name>_bench`
next to the configured PostgreSQL database), data helpers and naive per-order loop; the provider is
anymail's test backend without its outbox ("instant") or scripts/provider_sim.py (a Postmark API on
127.0.0.1 with a fixed latency) with anymail's Postmark backend pointed at it.

    python scripts/bench_sending.py [--reminders 10000] [--naive-reminders 2000] [--latency-ms 0 50]
                                    [--workers 1 2] [--rate-reminders 2000] [--profile-only]

Workers are Celery worker processes (`--pool solo`, one process each) on the Redis broker of
REDIS_URL, started by this script; the job is queued as a user's scheduler would (`run_dunning_job`)
and fans out into chunk tasks that the workers share. The machine's load average is printed and
written with each figure: the machine is shared."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench  # noqa: E402 - scripts/bench.py: database, data, the naive loop, forked children

OUTPUT = ROOT / "docs" / "benchmarks-sending.md"


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


# --- the per-stage profile (instant provider, one process) -----------------------------------------

def profile_stages(now_iso: str) -> dict:
    """The job with timers around each stage of the send path. Stages in the main thread are wall
    time (their SQL included); the provider call runs in the sending threads and is their CPU time."""
    import dunning.services.sending as sending
    from dunning import selectors
    from dunning.services import dunning_run_execute

    totals: dict[str, float] = defaultdict(float)

    def timed(name, fn, clock=time.perf_counter):
        def wrapper(*args, **kwargs):
            start = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                totals[name] += clock() - start
        return wrapper

    sending.SendBatch.claim = timed("claim (all of it)", sending.SendBatch.claim)
    selectors.order_claim = timed("  the claim's amounts (order_claim)", selectors.order_claim)
    sending.render_reminder = timed("  rendering the templates", sending.render_reminder)
    sending.build_message = timed("  building the message", sending.build_message)
    sending.SendBatch._flush = timed("write-back + hand-over (one transaction)", sending.SendBatch._flush)
    sending.SendBatch._write_back = timed("  writing back (sent, order, events)", sending.SendBatch._write_back)
    sending.SendBatch._mark_handed = timed("  handing over (UPDATE handed_at)", sending.SendBatch._mark_handed)
    sending.send_message = timed("provider call (anymail payload, CPU of the sending thread)", sending.send_message,
                                 clock=time.thread_time)
    start = time.perf_counter()
    run = dunning_run_execute(now=datetime.datetime.fromisoformat(now_iso))
    wall = time.perf_counter() - start
    sent = max(1, run.sent)
    stages = {name: seconds / sent * 1e6 for name, seconds in totals.items()}
    main = totals["claim (all of it)"] + totals["write-back + hand-over (one transaction)"]
    stages["rest of the run (due ids, orphans, waits, run row)"] = (wall - main) / sent * 1e6
    return {"sent": run.sent, "wall_us": wall / sent * 1e6, "stages": stages, "error": run.error}


STAGES = ["claim (all of it)", "  the claim's amounts (order_claim)", "  rendering the templates",
          "  building the message", "write-back + hand-over (one transaction)", "  writing back (sent, order, events)",
          "  handing over (UPDATE handed_at)", "provider call (anymail payload, CPU of the sending thread)",
          "rest of the run (due ids, orphans, waits, run row)"]


# --- workers -------------------------------------------------------------------------------------------

def start_workers(count: int, env: dict) -> list[subprocess.Popen]:
    """`count` Celery worker processes; returns once each has said it is ready."""
    import tempfile

    procs = []
    for i in range(count):
        log = tempfile.NamedTemporaryFile(prefix=f"bench-worker-{i}-", suffix=".log", delete=False)  # noqa: SIM115
        procs.append(subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "--concurrency", "1",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"bench{i}@%h",
             "--loglevel", "INFO"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True))
        procs[-1].log_path = log.name
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if all(" ready." in Path(p.log_path).read_text(errors="replace") for p in procs):
            return procs
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.2)
    stop_workers(procs)
    raise RuntimeError("the workers did not start: " + Path(procs[0].log_path).read_text(errors="replace")[-2000:])


def stop_workers(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        with contextlib.suppress(OSError):
            os.unlink(proc.log_path)


def run_with_workers(workers: int, env: dict, now: datetime.datetime, timeout: float = 900) -> dict:
    """Queue the job once; `workers` Celery processes take its chunk tasks. Returns the run's counts
    and the seconds from queueing to the run row's end."""
    from celery import current_app

    from dunning.models import DunningRun

    procs = start_workers(workers, env)
    try:
        before = DunningRun.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        start = time.perf_counter()
        current_app.send_task("dunning.tasks.run_dunning_job", kwargs={"trigger": "command"},
                              queue=env["CELERY_TASK_DEFAULT_QUEUE"])
        deadline = time.monotonic() + timeout
        run = None
        while time.monotonic() < deadline:
            run = DunningRun.objects.filter(pk__gt=before).order_by("pk").first()
            if run is not None and run.finished_at is not None:
                break
            time.sleep(0.05)
        queued_to_end = time.perf_counter() - start
        if run is None or run.finished_at is None:
            raise RuntimeError(f"the run did not finish in {timeout:g} s")
        # the run's own duration: from the job's start in a worker (the due query, the chunks written
        # and queued) to its last chunk's end; queued_to_end adds the broker's delivery of the job task
        return {"sent": run.sent, "failed": run.failed, "seconds": (run.duration_ms or 0) / 1000,
                "queued_to_end": queued_to_end, "error": run.error}
    finally:
        stop_workers(procs)


def worker_env(sim_url: str | None, concurrency: int, rate: float | None = None) -> dict:
    env = {**os.environ, "CELERY_TASK_ALWAYS_EAGER": "false", "DUNNING_SEND_CONCURRENCY": str(concurrency),
           "CELERY_TASK_DEFAULT_QUEUE": f"bench-sending-{os.getpid()}",
           "DUNNING_SEND_RATE": str(rate or "")}
    if sim_url:
        env.update({"EMAIL_BACKEND": "anymail.backends.postmark.EmailBackend",
                    "ANYMAIL_POSTMARK_SERVER_TOKEN": "bench", "ANYMAIL_POSTMARK_API_URL": sim_url})
    else:
        env["EMAIL_BACKEND"] = "bench_instant.Instant"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "scripts"), str(ROOT), env.get("PYTHONPATH", "")])
    return env


# --- a manual Notify through the view ---------------------------------------------------------------

def notify_through_view(api_url: str, order_ids: list[int]) -> dict:
    """Staff select `order_ids` and press Notify: POST to the view, follow to the result page.
    Returns the seconds until the result page has arrived and the reminders sent."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.test import Client

    User = get_user_model()  # noqa: N806 - the model class
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "bench", "POSTMARK_API_URL": api_url}
    settings.ALLOWED_HOSTS = ["*"]
    user, _ = User.objects.get_or_create(username="bench-notify", defaults={"is_staff": True})
    user.groups.add(Group.objects.get(name="Back office"))
    client = Client()
    client.force_login(user)
    start = time.perf_counter()
    # secure: production settings redirect http to https (301), and a followed 301 turns the POST
    # into a GET without the form (answered 400: that was the "Notify needs the level" of earlier runs)
    response = client.post("/orders/open-payments/notify/", {"dunning_level": "1", "ids": order_ids}, follow=True,
                           secure=True)
    if response.redirect_chain and response.redirect_chain[0][1] == 301:
        raise RuntimeError(f"the Notify POST was redirected: {response.redirect_chain}")
    seconds = time.perf_counter() - start
    text = response.content.decode()
    return {"seconds": seconds, "status": response.status_code, "sent_shown": 'id="count-sent">' in text,
            "sent": int(text.split('id="count-sent">', 1)[1].split("<", 1)[0]) if 'id="count-sent">' in text else 0}


# --- main ----------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reminders", type=int, default=10_000)
    parser.add_argument("--naive-reminders", type=int, default=2_000)
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0, 50])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate-reminders", type=int, default=2_000, help="0: skip the rate-limit figure")
    parser.add_argument("--notify-orders", type=int, default=300)
    parser.add_argument("--profile-only", action="store_true", help="only the per-stage profile (no file written)")
    parser.add_argument("--quick", action="store_true",
                        help="only the simulator rows of --latency-ms/--workers, printed (no profile, per-order "
                             "design, instant provider, Notify or rate limit; no file written)")
    parser.add_argument("--output", default=str(OUTPUT))
    args = parser.parse_args()

    url = bench.bench_database_url()
    if not url.startswith("postgres"):
        print("bench_sending needs PostgreSQL (DATABASE_URL)", file=sys.stderr)
        return 2
    if not os.environ.get("REDIS_URL"):
        print("bench_sending needs Redis (REDIS_URL): the broker of the workers", file=sys.stderr)
        return 2
    os.environ.update({"DATABASE_URL": url, "DJANGO_DEBUG": "false", "DJANGO_STATIC_MANIFEST": "false",
                       "EMAIL_BACKEND": "bench_instant.Instant", "CELERY_TASK_ALWAYS_EAGER": "true",
                       "DUNNING_SEND_CONCURRENCY": str(args.concurrency)})
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-" + "k" * 40)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    bench.ensure_postgres_database(url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    now = datetime.datetime.now(datetime.UTC)
    bench.generate(0, now)  # the accounts, payment methods and templates (no other orders)

    if args.quick:
        from provider_sim import SimConfig, SimProcess

        for latency in args.latency_ms:
            for workers in args.workers:
                sim = SimProcess(SimConfig(latency=latency / 1000))
                try:
                    bench.prepare_job_orders(args.reminders, now)
                    result = run_with_workers(workers, worker_env(sim.url, args.concurrency), now)
                    stats = sim.stats()
                finally:
                    sim.stop()
                accepted, twice = stats["accepted"], stats["twice"]
                rate = result["sent"] / result["seconds"]
                error = f"  ERROR {result['error']}" if result["error"] else ""
                print(f"  simulator {latency:g} ms, {workers} worker(s): {result['sent']:,} in "
                      f"{result['seconds']:.1f} s "
                      f"= {rate:,.0f}/s (accepted {accepted:,}, twice {twice}, simulator CPU "
                      f"{stats['cpu_seconds']:.1f} s, load {load()}){error}", flush=True)
        return 0

    bench.prepare_job_orders(args.reminders, now)
    profile, _ = bench.in_child(profile_stages, now.isoformat())
    print(f"profile, instant provider, {profile['sent']:,} reminders: {profile['wall_us']:.0f} us per reminder "
          f"(load {load()})", flush=True)
    for name in STAGES:
        if name in profile["stages"]:
            print(f"  {name:<55} {profile['stages'][name]:7.1f} us", flush=True)
    if args.profile_only:
        return 0

    rows = []
    # the per-order design and the job on the same machine in the same run: the ratio's base
    account_id = bench.prepare_job_orders(args.naive_reminders, now)
    naive, _ = bench.in_child(bench.run_naive, now.isoformat(), account_id)
    naive_rate = naive["sent"] / naive["seconds"]
    naive_load = load()
    print(f"naive per-order design over {naive['sent']:,}: {naive_rate:,.0f}/s (load {naive_load})", flush=True)

    from provider_sim import ProviderSim, SimConfig, SimProcess

    for latency in [None, *args.latency_ms]:
        for workers in args.workers:
            # the simulator in a process of its own: its CPU and interpreter lock are not the bench's
            sim = None if latency is None else SimProcess(SimConfig(latency=latency / 1000))
            stats = {"accepted": 0, "twice": 0, "cpu_seconds": 0.0}
            try:
                bench.prepare_job_orders(args.reminders, now)
                result = run_with_workers(workers, worker_env(sim and sim.url, args.concurrency), now)
                if sim is not None:
                    stats = sim.stats()
            finally:
                if sim is not None:
                    sim.stop()
            accepted = stats["accepted"] if sim else result["sent"]
            twice = stats["twice"]
            row = {"provider": "instant (anymail test backend)" if latency is None else f"simulator {latency:g} ms",
                   "latency": latency, "workers": workers, "sent": result["sent"], "accepted": accepted,
                   "twice": twice, "seconds": result["seconds"], "rate": result["sent"] / result["seconds"],
                   "load": load(), "error": result["error"][:200], "sim_cpu": stats["cpu_seconds"]}
            rows.append(row)
            print(f"  {row['provider']}, {workers} worker(s): {row['sent']:,} in {row['seconds']:.1f} s = "
                  f"{row['rate']:,.0f}/s (accepted {accepted:,}, twice {twice}, simulator CPU "
                  f"{row['sim_cpu']:.1f} s, load {row['load']})"
                  + (f"  ERROR {row['error']}" if row["error"] else ""), flush=True)

    from orders.models import Order

    sim = ProviderSim(0, SimConfig(latency=0.05)).start()
    try:
        account_id = bench.prepare_job_orders(args.notify_orders, now)
        ids = list(Order.objects.filter(sales_account_id=account_id).values_list("id", flat=True))
        notify, _ = bench.in_child(notify_through_view, sim.url, ids)
    finally:
        sim.stop()
    notify["load"] = load()
    notify["orders"] = len(ids)
    print(f"  Notify of {len(ids)} orders through the view at 50 ms: result page after {notify['seconds']:.2f} s "
          f"(HTTP {notify['status']}, sent {notify['sent']}, load {notify['load']})", flush=True)

    rate_row = None
    if args.rate_reminders:
        import redis

        redis.Redis.from_url(os.environ["REDIS_URL"]).delete("dunning:send-rate")
        sim = SimProcess(SimConfig(latency=0.05))
        try:
            bench.prepare_job_orders(args.rate_reminders, now)
            result = run_with_workers(2, worker_env(sim.url, args.concurrency, rate=100), now)
            stats = sim.stats()
        finally:
            sim.stop()
        measured = (stats["accepted"] - 1) / (stats["last"] - stats["first"])
        rate_row = {"sent": result["sent"], "rate": measured, "twice": stats["twice"], "load": load()}
        print(f"  DUNNING_SEND_RATE=100, two workers, {result['sent']:,} reminders: {measured:.1f}/s at the provider "
              f"(load {rate_row['load']})", flush=True)
    write_report(args, profile, naive_rate, naive_load, rows, rate_row, notify)
    print(f"wrote {args.output}")
    return 0


def write_report(args, profile, naive_rate, naive_load, rows, rate_row, notify) -> None:
    by = {(r["latency"], r["workers"]): r for r in rows}
    lines = ["# Benchmarks: sending reminders", "",
             "Written by `scripts/bench_sending.py` (`make bench-sending`) between its markers; the notes after "
             "them are kept. "
             f"Reproduce: `DATABASE_URL=postgres://... REDIS_URL=redis://... python scripts/bench_sending.py "
             f"--reminders {args.reminders}`.", "",
             f"PostgreSQL, Redis broker; {args.reminders:,} level-1 reminders due; "
             f"`DUNNING_SEND_CONCURRENCY={args.concurrency}`; the job queued once (`run_dunning_job`) and fanned "
             "out into chunk tasks taken by 1 or 2 Celery worker processes (`--pool solo`) started by the script. "
             "Seconds are the run's own duration (`DunningRun.duration_ms`: from the job's start in a worker, "
             "its due query and the chunks written and queued, to its last chunk's end; workers already ready). "
             "The simulator (`scripts/provider_sim.py`, threaded) runs in a process of its own; its CPU time "
             "over the whole figure is given. "
             "The machine has 2 cores and is shared with other work: the load average (1/5/15 min) is given "
             "with each figure, and ratios are taken within this one run.", "",
             "| provider | workers | reminders/s | sent | accepted by the provider | sent twice | simulator CPU | load "
             "| errors |",
             "|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        sim_cpu = f"{r['sim_cpu']:.1f} s" if r["latency"] is not None else "-"
        lines.append(f"| {r['provider']} | {r['workers']} | {r['rate']:,.0f} | {r['sent']:,} | {r['accepted']:,} | "
                     f"{r['twice']} | {sim_cpu} | {r['load']} | {r['error'] or '-'} |")
    lines += ["", f"The per-order design (`bench.run_naive`: one transaction per order that locks it, renders, "
              f"sends, inserts the reminder and updates the order; instant provider) in the same run: "
              f"**{naive_rate:,.0f}/s** over {args.naive_reminders:,} orders (load {naive_load}).", ""]
    ratios = []
    instant1 = by.get((None, 1))
    if instant1:
        ratios.append(f"- instant provider, one worker / per-order design: **{instant1['rate'] / naive_rate:.1f}x**")
    for latency in [None, *args.latency_ms]:
        one, two = by.get((latency, 1)), by.get((latency, 2))
        if one and two:
            name = "instant provider" if latency is None else f"{latency:g} ms"
            ratios.append(f"- {name}: two workers / one worker: **{two['rate'] / one['rate']:.2f}x**")
    lines += ["Ratios (same run):", "", *ratios, ""]
    if rate_row:
        lines += [f"Rate limit: `DUNNING_SEND_RATE=100`, two workers, {rate_row['sent']:,} reminders, 50 ms provider: "
                  f"**{rate_row['rate']:.1f} messages/s** measured at the provider (first to last accepted "
                  f"message; sent twice: {rate_row['twice']}; load {rate_row['load']}).", ""]
    lines += [f"Manual Notify of {notify['orders']} orders (the threshold: sent in the request) through the view "
              f"(`django.test.Client`: POST, then the result page), provider at 50 ms: **{notify['seconds']:.2f} s** "
              f"until the result page (HTTP {notify['status']}, {notify['sent']} shown as sent; "
              f"load {notify['load']}).",
              ""]
    lines += ["## CPU per reminder by stage", "",
              f"The job in one process with the instant provider, {profile['sent']:,} reminders, timers around each "
              f"stage (`--profile-only` prints only this): **{profile['wall_us']:.0f} µs per reminder** in all. "
              "Main-thread stages are wall time with their SQL; the provider call is the sending threads' CPU time "
              "(it overlaps the main thread).", "",
              "| stage | µs per reminder |", "|---|---:|"]
    for name in STAGES:
        if name in profile["stages"]:
            label = name.strip() if not name.startswith("  ") else "… " + name.strip()
            lines.append(f"| {label} | {profile['stages'][name]:.1f} |")
    lines.append("")
    path = Path(args.output)
    text = path.read_text() if path.exists() else ""
    body = BEGIN + "\n" + "\n".join(lines) + "\n" + END
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        body = head + body + rest.partition(END)[2]
    else:
        body = body + "\n" + text
    path.write_text(body)


BEGIN, END = "<!-- bench_sending: written by scripts/bench_sending.py -->", "<!-- /bench_sending -->"


if __name__ == "__main__":
    sys.exit(main())

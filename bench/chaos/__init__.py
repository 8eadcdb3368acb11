"""`python -m bench.chaos`: faults against real processes; reports what was lost or doubled.

Everything runs as it does in production, on servers of the run's own under var/chaos/: a
PostgreSQL cluster (pgserver's binaries, so `pg_ctl restart` is a real restart that no one
else's tests share), a `redis-server` on a free port, the X simulator on a free port, and two
real `celery worker` processes (solo pool, the project's config.celery app and settings).

Beat's part is played by a driven dispatcher, a thread of this process that sends the real
`listening.tasks.poll_keyword` task whenever the queue is empty, and the lost-reply sweeper
(`responses.tasks.resume_stalled_replies`) every 5 s: beat's own dispatcher would
poll the keyword at most every 5 s (the shortest interval a keyword may have), which would
make every recovery time a multiple of 5 s instead of a measurement. Replies go through the
real path: `reply_submit` here, the `send_reply` task in a worker. A worker that dies of a
fault is started again, as docker-compose's restart policy would, and named in the report.

The stream is the simulator's timeline: posts with ids this process knows, a tenth of them
reposts and copies (which fold under a mention instead of becoming one). After each fault
the run waits for recovery, then checks:

- lost: a post on the simulator that is neither a mention nor folded under one;
- duplicated: a post stored twice (as two mentions is impossible by the unique constraint;
  as a mention and a fold, or folded twice, or counted twice in amplification_count);
- double replies: a customer post the brand answered more than once on X;
- recovery: seconds from the end of the fault to the first successful poll, and to every
  post of the scenario stored (a reply scenario: to every reply sent).

It prints one table, writes bench/chaos_results.json (or --results) and exits 1 if any
scenario lost, doubled or did not recover.

rig.py: the servers, workers, dispatcher and stream; scenarios.py: the faults; checks.py:
what counts as lost or doubled; cli.py: the command.
"""

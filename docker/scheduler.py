"""The scheduler role: `flask cron` and a standalone RQ scheduler, supervised together.

Run as exactly one replica. The RQ scheduler moves due jobs (retries with backoff, ``enqueue_at``
hold expiries) from the scheduled registries onto the queues; workers also run one, but the worker
app may scale to zero, and KEDA only sees jobs once they are on a queue. If either child exits, the
other is stopped and this process exits non-zero so the platform restarts the replica. SIGTERM is
forwarded to both and answered with exit 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

RQ_SCHEDULER = """
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from app import create_app
from app.extensions import get_redis
app = create_app()
with app.app_context():
    RQScheduler(app.config["RQ_QUEUES"], connection=get_redis(), serializer=JSONSerializer).work()
"""


def main() -> int:
    env = {**os.environ, "FLASK_APP": os.environ.get("FLASK_APP", "wsgi.py")}
    children = [
        subprocess.Popen([sys.executable, "-m", "flask", "cron"], env=env),
        subprocess.Popen([sys.executable, "-c", RQ_SCHEDULER], env=env),
    ]
    signalled = False

    def on_signal(signum, frame):
        nonlocal signalled
        signalled = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not signalled and all(child.poll() is None for child in children):
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    # Asked to stop: a clean exit. A child died on its own: fail, so the platform restarts us.
    return 0 if signalled else 1


if __name__ == "__main__":
    sys.exit(main())

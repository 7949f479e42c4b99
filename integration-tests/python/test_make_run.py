"""`make run` stops everything it started whenever it is told to, during start-up too: a Ctrl-C
(SIGINT) or SIGTERM that arrives once Postgres and nats-server are up but before READY leaves no
server behind, so the next `make run` starts cleanly."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_during_start_up_stops_everything_started(sig):
    names = ["NATS_PORT", "POSTGRES_PORT", "GRPC_PORT", "WEB_PORT", "WEBHOOK_PORT", "SIM_PORT", "SMTP_PORT"]
    ports = {name: free_port() for name in names}
    data = tempfile.mkdtemp(prefix="msg-run-")
    env = dict(os.environ, DATA_DIR=data, DEMO="0", MSG_PYTHON=sys.executable, **{k: str(v) for k, v in ports.items()})
    log = open(Path(data) / "devstack.out", "w+")
    process = subprocess.Popen([str(ROOT / "target/debug/devstack")], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while not (listening(ports["POSTGRES_PORT"]) and listening(ports["NATS_PORT"])):
            assert process.poll() is None, "devstack exited early"
            assert time.time() < deadline, "Postgres and nats-server never came up"
            time.sleep(0.05)
        log.seek(0)
        assert "READY" not in log.read(), "the signal must arrive during start-up"
        process.send_signal(sig)
        process.wait(timeout=60)
        for name in ["POSTGRES_PORT", "NATS_PORT"]:
            assert not listening(ports[name]), f"{name} still served after devstack stopped"
        assert not (Path(data) / "postgres" / "postmaster.pid").exists(), "Postgres left running"
    finally:
        if process.poll() is None:
            process.kill()
        log.seek(0)
        print(log.read())
        pg_ctl = shutil.which("pg_ctl")
        if pg_ctl and (Path(data) / "postgres" / "postmaster.pid").exists():
            subprocess.run([pg_ctl, "-D", str(Path(data) / "postgres"), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)

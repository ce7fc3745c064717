"""The process supervisor: its port check and how it stops what it started."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

from devstack.processes import HOST, PYTHON, Child, base_env, free_port, port_is_free, wait_until
from devstack.runtime import pid_alive

PROC = Path("/proc")
PROC_NET_TCP = PROC / "net" / "tcp"


def test_a_port_left_in_time_wait_is_free_and_a_listening_port_is_not():
    port = free_port()
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        server.bind((HOST, port))
        server.listen()
        assert not port_is_free(port)
        with socket.create_connection((HOST, port)) as client:
            accepted, _ = server.accept()
            accepted.close()  # the server side closes first: its end of the connection goes to TIME_WAIT
            assert client.recv(1) == b""
    if PROC_NET_TCP.exists():  # Linux: check the test really left the socket in TIME_WAIT
        assert time_wait_on(port), "no socket in TIME_WAIT: the test proves nothing"
    assert port_is_free(port)


def time_wait_on(port: int) -> bool:
    """Whether the kernel's TCP table lists a TIME_WAIT (state 06) socket on local port `port`."""
    rows = [line.split() for line in PROC_NET_TCP.read_text().splitlines()[1:]]
    return any(int(row[1].split(":")[1], 16) == port and row[3] == "06" for row in rows)


# A leader that ignores SIGTERM, with a child of its own in its process group.
STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(60)
"""


def test_stop_kills_the_whole_group_once_the_timeout_has_passed(tmp_path: Path):
    stubborn = Child("stubborn", [PYTHON, "-c", STUBBORN], base_env(), tmp_path).start()
    wait_until(lambda: stubborn.output_tail().strip().isdigit(), 20, "the grandchild", stubborn)
    grandchild = int(stubborn.output_tail())

    started = time.monotonic()
    stubborn.stop(timeout=0.5)

    assert time.monotonic() - started >= 0.5  # it was given the time to stop by itself
    assert stubborn.popen.returncode == -signal.SIGKILL
    # SIGKILL reaches the group's other processes asynchronously: gone within moments, not at once
    wait_until(lambda: not running(grandchild), 5, "the grandchild to be killed")


# A leader that ignores SIGTERM and answers SIGUSR1 by printing its stack, as a Celery worker does.
HUNG = """
import signal, sys, time, traceback
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGUSR1, lambda _signum, frame: traceback.print_stack(frame, file=sys.stdout))
print("ready", flush=True)
def where_it_hangs():
    time.sleep(60)
where_it_hangs()
"""


def test_a_child_that_outlives_its_stop_prints_its_stack_to_its_log_before_it_is_killed(tmp_path: Path):
    hung = Child("hung", [PYTHON, "-c", HUNG], base_env(), tmp_path, stack_dump_signal=signal.SIGUSR1).start()
    wait_until(lambda: "ready" in hung.output_tail(), 20, "the hung child", hung)

    hung.stop(timeout=0.5)

    assert hung.popen.returncode == -signal.SIGKILL
    assert "in where_it_hangs" in hung.log_path.read_text()


def running(pid: int) -> bool:
    """Alive and not a zombie (a killed orphan stays one until its new parent reaps it)."""
    if not PROC.is_dir():
        return pid_alive(pid)
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False

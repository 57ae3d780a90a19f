#!/usr/bin/env python3
"""Runs one command and measures it, whole process tree included.

Usage: measure.py OUT.json INTERVAL_SECONDS [--until-exit] -- COMMAND [ARG...]

- This process becomes a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so processes the command leaves behind
  (pgBackRest's detached async archive-push/archive-get workers) are re-parented to it instead of to init: their CPU
  time is collected by wait4() like any child's, and the run ends only when the last descendant has exited.
- CPU is the user and system time wait4() reports for every reaped child. wait4's figures include all the
  descendants that child waited for, so threads (Node's worker threads), forked workers and orphans are all counted,
  each once. This process's own sampling is not counted.
- Peak RSS is the larger of: the largest sum of the resident set sizes of all live descendants, sampled every
  INTERVAL seconds from /proc (catches concurrent processes such as pgBackRest's process-max workers), and the
  exact per-process high-water mark (ru_maxrss) of the largest single process.
- Wall time is measured to the exit of the command itself (wall_s) and to the exit of its last descendant
  (wall_all_s).
- While it runs, creating OUT.json.mark makes it record a snapshot (time, CPU so far including live processes'
  /proc counters, peak RSS so far) under "mark": used to time PostgreSQL's recovery, which is over long before the
  server is stopped.

- With --until-exit the measurement ends when the command itself exits, not its last descendant: for commands that
  start a PostgreSQL server and leave it running (staging-link, clone-create, pg_ctl start). The CPU of descendants
  still alive then is read from /proc and added; they are left running (re-parented when this process exits).
- Besides the whole tree, peak_rss_tool_bytes is the same peak without PostgreSQL's own processes (command name
  `postgres`): the memory of the tool and its helpers, not of a server it started.

The command's stdin, stdout and stderr are inherited. Writes OUT.json when everything has exited.
"""
import ctypes
import json
import os
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
PAGE = os.sysconf('SC_PAGE_SIZE')
TICK = os.sysconf('SC_CLK_TCK')


def descendants(root):
    """pid -> (rss bytes, cpu seconds incl. waited-for children, command name) for every live descendant of root."""
    parent = {}
    stats = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry, 'rb') as handle:
                data = handle.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        fields = data[data.rindex(b')') + 2:].split()
        comm = data[data.index(b'(') + 1:data.rindex(b')')].decode('utf-8', 'replace')
        pid = int(entry)
        parent[pid] = int(fields[1])
        # fields[0] is field 3 (state) of proc(5): utime=14, stime=15, cutime=16, cstime=17, rss=24.
        cpu = (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / TICK
        stats[pid] = (int(fields[21]) * PAGE, cpu, comm)
    children = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    found = {}
    stack = list(children.get(root, []))
    while stack:
        pid = stack.pop()
        if pid in found:
            continue
        found[pid] = stats[pid]
        stack.extend(children.get(pid, []))
    return found


def main():
    out, interval = sys.argv[1], float(sys.argv[2])
    rest = sys.argv[3:]
    until_exit = bool(rest) and rest[0] == '--until-exit'
    if until_exit:
        rest = rest[1:]
    if not rest or rest[0] != '--':
        sys.exit('usage: measure.py OUT.json INTERVAL [--until-exit] -- COMMAND [ARG...]')
    command = rest[1:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit('measure.py: prctl(PR_SET_CHILD_SUBREAPER) failed: errno %d' % ctypes.get_errno())

    me = os.getpid()
    started = time.monotonic()
    child = os.fork()
    if child == 0:
        try:
            os.execvp(command[0], command)
        except OSError as error:
            sys.stderr.write('measure.py: cannot run %s: %s\n' % (command[0], error))
        os._exit(127)

    # Pass termination on to the command: the bench's clean-up must not leave it running.
    def forward(signum, _frame):
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)

    user = system = 0.0
    maxrss_single = 0
    peak_tree = 0
    peak_tool = 0
    maxrss_tool_single = 0
    comms = {}
    samples = 0
    wall = None
    status = None
    mark = None
    mark_file = out + '.mark'
    while True:
        finished = False
        while True:
            try:
                pid, wait_status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                finished = True
                break
            except InterruptedError:
                continue
            if pid == 0:
                break
            user += usage.ru_utime
            system += usage.ru_stime
            maxrss_single = max(maxrss_single, usage.ru_maxrss * 1024)
            if comms.get(pid, '') != 'postgres':
                maxrss_tool_single = max(maxrss_tool_single, usage.ru_maxrss * 1024)
            if pid == child:
                wall = time.monotonic() - started
                status = os.waitstatus_to_exitcode(wait_status)
        if finished:
            break
        live = descendants(me)
        samples += 1
        for pid, (_, _, comm) in live.items():
            comms[pid] = comm
        peak_tree = max(peak_tree, sum(rss for rss, _, _ in live.values()))
        peak_tool = max(peak_tool, sum(rss for rss, _, comm in live.values() if comm != 'postgres'))
        if mark is None and os.path.exists(mark_file):
            mark = {
                'wall_s': time.monotonic() - started,
                'cpu_s': user + system + sum(cpu for _, cpu, _ in live.values()),
                'peak_rss_bytes': max(peak_tree, maxrss_single),
            }
        if until_exit and wall is not None:
            # The command is done; what it left running (a server) is not waited for, only its CPU so far counted.
            # Those processes' /proc counters include the children they reaped, which wait4 never reported here.
            left = sum(cpu for _, cpu, _ in live.values())
            user += left
            break
        time.sleep(interval)

    result = {
        'exit_code': status if status is not None else -1,
        # A negative exit code is a signal: report it like a shell does.
        'wall_s': wall,
        'wall_all_s': time.monotonic() - started,
        'user_s': user,
        'sys_s': system,
        'cpu_s': user + system,
        'peak_rss_bytes': max(peak_tree, maxrss_single),
        'peak_tree_rss_bytes': peak_tree,
        'max_rss_single_bytes': maxrss_single,
        'peak_rss_tool_bytes': max(peak_tool, maxrss_tool_single),
        'samples': samples,
        'mark': mark,
    }
    with open(out + '.tmp', 'w') as handle:
        json.dump(result, handle)
    os.rename(out + '.tmp', out)
    code = result['exit_code']
    sys.exit(128 - code if code < 0 else min(code, 255))


main()

#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/seeds/TARGET/) from the tests' own data: the
level corpus (tests/data/log_levels.txt), the stack traces (examples/support/traces.rs), the
cgroup fixtures (tests/data/cgroup/), and the env files, passwd/group files, command lines and
answers of the unit tests. Each seed is laid out as its target reads its input (see the
target's doc comment). Run from anywhere: `python3 fuzz/seeds/make.py`; the seeds are
committed, so only after the data changes."""

import hashlib
import pathlib
import re
import shutil

ROOT = pathlib.Path(__file__).resolve().parents[2]
SEEDS = ROOT / "fuzz" / "seeds"


def write(target, data):
    folder = SEEDS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def corpus_lines():
    """(stream, line) of each level corpus entry."""
    for raw in (ROOT / "tests/data/log_levels.txt").read_text().splitlines():
        if not raw or raw.startswith("#") or " | " not in raw:
            continue
        head, line = raw.split(" | ", 1)
        stream = head.split()[1]
        yield stream, line


def traces():
    """Each trace of examples/support/traces.rs as its lines (Rust string literals decoded)."""
    text = (ROOT / "examples/support/traces.rs").read_text()
    body = text.split("pub const TRACES", 1)[1]
    found = []
    for block in re.findall(r"&\[\s*((?:\"(?:[^\"\\]|\\.)*\",?\s*)+)\]", body):
        lines = re.findall(r"\"((?:[^\"\\]|\\.)*)\"", block)
        decoded = [l.encode().decode("unicode_escape").encode("latin-1").decode("utf-8") for l in lines]
        found.append(decoded)
    return found


def encoder_header(flags=0, max_byte=0, flush=0, reads=()):
    """EncoderCase::read's bytes: flags, record limit, hold flushes, read sizes."""
    header = bytes([flags, max_byte, flush, len(reads)])
    for size in reads:
        header += (size - 1).to_bytes(2, "little")
    return header


def main():
    for target in SEEDS.iterdir() if SEEDS.exists() else []:
        if target.is_dir():
            shutil.rmtree(target)

    lines = list(corpus_lines())
    all_traces = traces()

    # level_sniff: every line of the level corpus.
    for _, line in lines:
        write("level_sniff", line.encode())

    # log_encoder: the corpus in runs of lines, each run in another schema, stream and read
    # pattern; a line over the record limit; JSON lines.
    for n in range(0, len(lines), 40):
        run = "\n".join(line for _, line in lines[n : n + 40]) + "\n"
        k = n // 40
        flags = (k % 4) | (4 if k % 3 == 0 else 0) | (16 if k % 5 == 0 else 0)
        reads = [(1, 7, 300), (), (4096,), (13, 64)][k % 4]
        write("log_encoder", encoder_header(flags, k % 8, 0, reads) + run.encode())
    long_line = ("x" * 1500 + " ERROR " + "é🦀\"\\\t" * 200 + "\r\n").encode()
    write("log_encoder", encoder_header(0, 0, 0, (100,)) + long_line)
    write("log_encoder", encoder_header(0, 0, 0, (1,)) + b"\xf0\x9f\xff" * 500 + b"\n")
    json_lines = (
        b'{"msg":"hi","n":1}\n{}\n { "level":30,"time":1}\n{"severity":"warning","a":{"b":[1,2]}}\n'
        b'{"level":"debug","msg":"x"} tail\n{"k":"\\ud800"}\n{"big":1e400}\n'
    )
    write("log_encoder", encoder_header(0) + json_lines)
    write("log_encoder", encoder_header(8, 0, 0, (5, 50)) + json_lines)

    # multiline: each trace, whole and in reads, after a plain line; all of them in a row.
    for n, trace in enumerate(all_traces):
        text = ("request handled\n" + "\n".join(trace) + "\nnext request\n").encode()
        write("multiline", encoder_header(n % 4, 0, 0, ()) + text)
        write("multiline", encoder_header(4, 0, 1 + n % 3, (7, 40)) + text)
    everything = "\n".join("\n".join(t) for t in all_traces) + "\n"
    write("multiline", encoder_header(0, 0, 0, (512,)) + everything.encode())

    # env_file: the unit tests' files.
    for content in [
        b"  KEY  =  some value  \nK2\t=\tv\t\n",
        b"A='x \\n $HOME # not a comment \"q\"'\nA= '  padded  '  \n",
        b'A="l1\\nl2\\tt\\rr\\"q\\\\b\\$HOME"\nB="\\q \\x kept # not a comment = \\""\nC="trailing\\\\"\n',
        b"URL=postgres://u@h/db?sslmode=require&x==y\nQ=\"a=b\"\n",
        b"A=value # comment\nB=val#ue\nC=value\t#tab comment\nD=\"q\" # c\nE='q'\t# c\nF=#x\n",
        b"A=\nB=\"\"\nC=''\nD=   \nE= # only a comment\n",
        b"\xef\xbb\xbfA=1\r\n# c\r\n\r\nB=\"two\"\r\nC='3' # c\r\n",
        b"A=caf\xe9\nB=\"\xff\xfe\"\n",
        b"export A=1\nexport = 2\nexport\tB='x'\n",
        b"A=1\r\nB=\"x\r\n",
        b"1A=x\n",
        b"A='open\n",
        b'A="x" y\n',
        b"NOEQUALS\n",
    ]:
        write("env_file", content)

    # passwd_group: the unit tests' files, with specs by name, number, group.
    passwd = (
        b"root:x:0:0:root:/root:/bin/sh\n"
        b"daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
        b"app:x:1000:1000:App User:/home/app:/bin/sh\n"
        b"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        b"+nis::::::\n# comment\n\nbad:x:notanumber:1::/:/bin/sh\n"
    )
    group = (
        b"root:x:0:\ndaemon:x:1:\napp:x:1000:app\nstaff:x:50:root,app\n"
        b"audio:x:29:other,app,more\nvideo:x:44:other\nwheel:x:10:app\n"
    )
    for flags, spec in [
        (0, b"app"),
        (0, b"1000"),
        (0, b"app:staff"),
        (0, b"0:4343"),
        (0, b"nobody"),
        (0, b"4242:video"),
        (0, b"4294967295"),
        (0, b"app::x"),
        (1, b"app"),
        (2, b"root:wheel"),
    ]:
        write("passwd_group", bytes([flags]) + spec + b"\0" + passwd + b"\0" + group)
    write("passwd_group", b"\0app\0app:x:1000:1000::/h:/bin/sh\r\n\0app:x:7:app\r\n")

    # cli: command lines of the unit tests (flags byte: how many argv fields), with variables.
    for argv, env in [
        (["--grace", "1s", "sh", "-c", "echo  a   b"], []),
        (["--", "-weird", "--help"], []),
        (["-v", "probe"], []),
        (["x"], ["USHER_GRACE=3s", "USHER_SINGLE_CHILD=true", "USHER_REWRITE=TERM:QUIT, USR1:0"]),
        (["--user", "app:staff", "--cap-keep", "NET_BIND_SERVICE", "--env-file", "/e", "x"], []),
        (["--secret-env", "DB,API", "x"], ["DB_FILE=/run/secrets/db"]),
        (["--log-field", "service=api", "--log-max-record", "2048", "--log-schema", "ecs", "x"], []),
        (["--ready-when", "http://127.0.0.1:8080/ready", "--live-when", "watchdog:2m", "x"], []),
        (["-s", "-g", "-e", "143", "-p", "SIGTERM", "-w", "-vvv", "x"], ["TINI_VERBOSITY=2"]),
        (["-c", "-r", "15:3", "x"], ["DUMB_INIT_SETSID=0"]),
        (["probe", "--timeout", "1s", "http://127.0.0.1:8558/health"], []),
        (["probe"], ["USHER_HEALTH_ADDR=off"]),
        (["--health-addr", "off", "--stop-signal", "QUIT", "--drain", "2s", "x"], []),
        (["--grace", "1\n2", "x"], []),
        (["--help"], []),
    ]:
        fields = [a.encode() for a in argv] + [e.encode() for e in env]
        write("cli", bytes([len(argv)]) + b"\0".join(fields))
        write("cli", bytes([0x10 | len(argv)]) + b"\0".join(fields))

    # sd_notify: datagrams as apps send them.
    for datagram in [
        b"READY=1",
        b"STOPPING=1\nSTATUS=shutting down\n",
        b"MAINPID=7\nREADY=0\nWATCHDOG=0\nWATCHDOG_USEC=5",
        b"WATCHDOG=1\nREADY=1",
        b"WATCHDOG=1\nWATCHDOG=trigger",
        b"STATUS=" + "é".encode() * 200,
        b"RELOADING=1\r\nSTATUS=reloading\r\n",
        b"READY=1\n\xff\xfeSTATUS=x",
    ]:
        write("sd_notify", datagram)

    # http_response: raw answers (flags 0) and generated well-formed ones (flags 1).
    for answer in [
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        b"HTTP/1.0 503 Service Unavailable\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        b"HTTP/1.1  301  Moved\r\nLocation : /x\r\n folded\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"X-Long: " + b"v" * 9000 + b"\r\n\r\n",
    ]:
        write("http_response", bytes([0, 2]) + (10).to_bytes(2, "little") + (1).to_bytes(2, "little") + answer)
    write("http_response", bytes([1, 0]) + bytes(range(64)))

    # cgroup_files: the cgroup fixtures' texts (mode 0), and a few generated cases per mode.
    fixtures = ROOT / "tests/data/cgroup"
    for case in sorted(p for p in fixtures.iterdir() if p.is_dir()):
        proc_self = case / "proc/self"
        if not (proc_self / "cgroup").exists():
            continue
        others = b"".join(p.read_bytes() for p in sorted(case.rglob("*")) if p.is_file() and "sys" in p.parts)
        data = (proc_self / "cgroup").read_bytes() + b"\0" + (proc_self / "mountinfo").read_bytes() + b"\0" + others
        write("cgroup_files", bytes([0]) + data)
    for mode in range(1, 6):
        write("cgroup_files", bytes([mode]) + bytes(range(7, 7 + 48)))


if __name__ == "__main__":
    main()

/* early_signals: how often a SIGTERM sent right after an init's exec is lost.
 *
 *   early_signals [--deadline-ms N] --delays D1,D2,... -- TOOL [ARG...]
 *   early_signals --sleeper
 *   early_signals --floor-init COMMAND [ARG...]
 *
 * For each delay D (microseconds, in the order given), one try: clone(2) into a new PID and
 * mount namespace, mount that namespace's /proc, and exec TOOL as its PID 1 with an empty signal
 * mask and every disposition at its default. The parent learns that the exec has happened when
 * a close-on-exec pipe reaches end of file (the kernel closes it inside execve, after it has
 * reset the signal handlers and before the new program runs a single instruction); it spins on
 * that pipe, then on the clock until D us have passed, and sends SIGTERM. As PID 1 of a
 * namespace, the tool loses a signal sent while its disposition is the default and it is not
 * blocked: the kernel drops it when it is sent.
 *
 * With two CPUs or more, the harness spins on one and the tool (with its children) runs on
 * another: the timing is the tool's own, not a wait for the harness's time slice.
 *
 * TOOL's command is expected to run `early_signals --sleeper`, which waits forever and dies of
 * the TERM once it is forwarded: a tool that forwarded the TERM exits with 143 (128 + 15).
 *
 * One line per try on stdout: "DELAY OUTCOME SENT_US EXIT_US STATUS", where OUTCOME is
 * `forwarded` (exit status 143), `lost` (still running DEADLINE ms after the TERM; then killed),
 * or `other` (any other end); SENT_US is when the TERM left, in us after the exec was seen;
 * EXIT_US the time from the TERM to the tool's exit (-1 when lost); STATUS the exit code, or
 * minus the signal that killed the tool.
 *
 * `--floor-init` is the least an init can do, for reference: it blocks every signal in a C
 * constructor (before main, as usher does), runs COMMAND, forwards a TERM to it, and exits with
 * 128 + the signal that killed it. Built static like tini-static, it shows how much of the
 * window is the exec and the C library's start-up, which no init can avoid.
 *
 * Linux only (clone with CLONE_NEWPID, pidfd_open); run as root. Built by bench/early_signals.py
 * with `cc -O2 -static`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_DELAYS 64

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* The parent spins on one CPU and the tool runs on another, when there are two: neither then
 * waits for the other's time slice, and the delays are the tool's own. */
static int harness_cpu = -1, tool_cpu = -1;

static void pin(int cpu) {
    cpu_set_t set;
    if (cpu < 0)
        return;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

static void choose_cpus(void) {
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) == -1 || CPU_COUNT(&allowed) < 2)
        return;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &allowed))
            continue;
        if (harness_cpu < 0)
            harness_cpu = cpu;
        else
            tool_cpu = cpu;
    }
    pin(harness_cpu);
}

static void die(const char *what) {
    fprintf(stderr, "early_signals: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void __attribute__((noreturn)) sleeper(void) {
    /* Whatever the tool left us: TERM at its default and unblocked, so that a forwarded TERM
     * ends us. */
    sigset_t none;
    sigemptyset(&none);
    signal(SIGTERM, SIG_DFL);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (;;)
        pause();
}

static int floor_mode;

/* glibc calls constructors with main's arguments. */
__attribute__((constructor)) static void floor_block(int argc, char **argv) {
    sigset_t all;
    if (argc >= 2 && strcmp(argv[1], "--floor-init") == 0) {
        floor_mode = 1;
        sigfillset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
    }
}

static int floor_init(char **command) {
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    pid_t child = fork();
    if (child == 0) {
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(command[0], command);
        _exit(127);
    }
    for (;;) {
        int signo = sigwaitinfo(&all, NULL);
        if (signo == SIGTERM && child > 0)
            kill(child, SIGTERM);
        int status;
        if (signo == SIGCHLD && waitpid(child, &status, WNOHANG) == child)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
}

/* Between clone and exec, in the new namespaces. Reports a failure's errno on the pipe. */
static void become_tool(int report, char **argv) {
    int error;
    sigset_t none;
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* the harness gone, nothing stays behind */
    pin(tool_cpu);
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == -1 ||
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == -1)
        goto fail;
    for (int signo = 1; signo < NSIG; signo++)
        signal(signo, SIG_DFL); /* fails harmlessly for KILL, STOP and glibc's own */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int null = open("/dev/null", O_RDWR);
    if (null == -1 || dup2(null, 0) == -1 || dup2(null, 1) == -1 || dup2(null, 2) == -1)
        goto fail;
    execv(argv[0], argv);
fail:
    error = errno;
    if (write(report, &error, sizeof error) < 0) {
        /* nothing more to say */
    }
    _exit(127);
}

static void one_try(long delay_us, long deadline_ms, char **argv) {
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) == -1)
        die("pipe2");
    /* Like fork, into new namespaces: the child is PID 1 of its own. */
    pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWPID | CLONE_NEWNS | SIGCHLD, NULL, NULL, NULL,
                               NULL);
    if (pid == -1)
        die("clone");
    if (pid == 0) {
        close(pipe_fds[0]);
        become_tool(pipe_fds[1], argv);
    }
    close(pipe_fds[1]);
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd == -1)
        die("pidfd_open");
    int error = 0;
    ssize_t got;
    /* Spin rather than sleep in read(2): a wake-up would add its own latency to the delay. */
    while ((got = read(pipe_fds[0], &error, sizeof error)) == -1 &&
           (errno == EAGAIN || errno == EINTR))
        ;
    long long exec_seen = now_ns();
    close(pipe_fds[0]);
    if (got != 0) {
        errno = got > 0 ? error : errno;
        die("exec of the tool");
    }
    long long send_at = exec_seen + delay_us * 1000LL;
    while (now_ns() < send_at)
        ;
    long long sent = now_ns();
    if (kill(pid, SIGTERM) == -1)
        die("kill");
    struct pollfd exited = {.fd = pidfd, .events = POLLIN};
    int ready;
    long long deadline = sent + deadline_ms * 1000000LL;
    do {
        long long left_ms = (deadline - now_ns() + 999999) / 1000000;
        ready = poll(&exited, 1, left_ms > 0 ? (int)left_ms : 0);
    } while (ready == -1 && errno == EINTR);
    long long ended = now_ns();
    const char *outcome;
    if (ready == 0) {
        kill(pid, SIGKILL); /* PID 1 gone, the kernel kills the rest of the namespace */
        outcome = "lost";
    }
    int status;
    if (waitpid(pid, &status, 0) == -1)
        die("waitpid");
    close(pidfd);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    if (ready != 0)
        outcome = code == 128 + SIGTERM ? "forwarded" : "other";
    printf("%ld %s %.1f %.1f %d\n", delay_us, outcome, (sent - exec_seen) / 1e3,
           ready == 0 ? -1.0 : (ended - sent) / 1e3, code);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--sleeper") == 0)
        sleeper();
    if (floor_mode && argc >= 3)
        return floor_init(argv + 2);
    long deadline_ms = 1000;
    long delays[MAX_DELAYS];
    int delay_count = 0;
    int i = 1;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--deadline-ms") == 0 && i + 1 < argc) {
            deadline_ms = atol(argv[++i]);
        } else if (strcmp(argv[i], "--delays") == 0 && i + 1 < argc) {
            char *d = strtok(argv[++i], ",");
            for (; d && delay_count < MAX_DELAYS; d = strtok(NULL, ","))
                delays[delay_count++] = atol(d);
        } else {
            fprintf(stderr, "early_signals: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (i + 1 >= argc || delay_count == 0 || deadline_ms <= 0) {
        fprintf(stderr, "usage: early_signals [--deadline-ms N] --delays D1,D2,... -- TOOL "
                        "[ARG...]\n");
        return 2;
    }
    choose_cpus();
    for (int d = 0; d < delay_count; d++)
        one_try(delays[d], deadline_ms, argv + i + 1);
    return 0;
}

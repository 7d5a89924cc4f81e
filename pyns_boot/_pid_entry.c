/*
 * The pid-namespace supervisor: see _pid_entry.h and docs/env-interface.md
 * ("The program inside the pid namespace").
 */
#define _GNU_SOURCE 1
#include "_pid_entry.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef __NR_close_range
#define __NR_close_range 436
#endif

#define SUPERVISOR_LOST_CHILD 125

enum pid_request pid_entry_request(const char *value)
{
    if (value == NULL || value[0] == '\0')
        return PID_REQUEST_ENTER;
    if (strcmp(value, "children") == 0)
        return PID_REQUEST_CHILDREN;
    return PID_REQUEST_INVALID;
}

char *pid_entry_invalid_message(const char *value)
{
    char *message;
    if (asprintf(&message,
                 "pyns_boot: " PID_MODE_VARIABLE "=\"%s\" is not understood "
                 "(expected \"children\" to leave the program outside the pid "
                 "namespace gons_pid names, or unset to run it inside); no "
                 "namespace was joined",
                 value) < 0)
        return NULL;
    return message;
}

char *pid_entry_fork_message(const char *path, int error_errno)
{
    /* ENOMEM: what the kernel says about a namespace whose init is gone */
    const char *way_out =
        error_errno == ENOMEM
            ? " (the init process of that pid namespace has exited, so it "
              "takes no new process); name a pid namespace whose init is "
              "running"
            : "; set " PID_MODE_VARIABLE "=children to run it outside (only "
              "its children then enter the namespace)";
    char *message;
    if (asprintf(&message,
                 "pyns_boot: joined gons_pid \"%s\", but cannot run the "
                 "program inside it: fork failed: %s%s",
                 path, strerror(error_errno), way_out) < 0)
        return NULL;
    return message;
}

int pid_entry_prepare(struct pid_entry *entry)
{
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
        return -1;
    sigset_t all;
    sigfillset(&all);
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigemptyset(&dfl.sa_mask);
    /* An inherited SIG_IGN for SIGCHLD would reap the child by itself
     * (nsenter resets it too); blocked, SIGCHLD waits for sigwaitinfo. */
    if (sigprocmask(SIG_BLOCK, &all, &entry->old_mask) < 0 ||
        sigaction(SIGCHLD, &dfl, &entry->old_chld) < 0) {
        int error_errno = errno;
        close(fds[0]);
        close(fds[1]);
        errno = error_errno;
        return -1;
    }
    entry->child_end = fds[0];
    entry->supervisor_end = fds[1];
    return 0;
}

static void restore_signals(struct pid_entry *entry)
{
    sigaction(SIGCHLD, &entry->old_chld, NULL);
    sigprocmask(SIG_SETMASK, &entry->old_mask, NULL);
}

void pid_entry_abort(struct pid_entry *entry)
{
    int error_errno = errno;
    close(entry->child_end);
    close(entry->supervisor_end);
    restore_signals(entry);
    errno = error_errno;
}

void pid_entry_child(struct pid_entry *entry)
{
    close(entry->supervisor_end);
    /* getppid() cannot tell whether the supervisor is still there: it sits
     * outside this pid namespace, so getppid() is 0 before and after it
     * dies.  The socket can: the supervisor holds its other end. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        raise(SIGKILL);
    /* A process group of its own: a signal sent to the supervisor's group
     * (kill -INT -PGID, ^C while that group has the terminal) reaches the
     * supervisor alone, which forwards it once.  Cannot fail for a process
     * that has just been forked (it leads no session, it has not exec'd). */
    setpgid(0, 0);
    /* What reached this process while it was still in the supervisor's
     * group (every signal is blocked, so it is pending): the same send
     * reached the supervisor, which must not forward it again. */
    sigset_t pending;
    /* All of it: sigemptyset and the kernel set the first 64 bits only */
    memset(&pending, 0, sizeof pending);
    if (sigpending(&pending) < 0)
        sigemptyset(&pending);
    ssize_t sent;
    do
        sent = send(entry->child_end, &pending, sizeof pending, MSG_NOSIGNAL);
    while (sent < 0 && errno == EINTR);
    struct pollfd alive = {.fd = entry->child_end, .events = POLLIN};
    int ready;
    do
        ready = poll(&alive, 1, 0);
    while (ready < 0 && errno == EINTR);
    if (ready != 0) /* POLLHUP: the supervisor is gone; or poll failed */
        raise(SIGKILL);
    close(entry->child_end);
    restore_signals(entry);
}

/* Close every descriptor above 2 but keep: the supervisor does no I/O.
 * stdin, stdout and stderr stay, as nsenter keeps them. */
static void close_descriptors(int keep)
{
    if (syscall(__NR_close_range, 3U, (unsigned)keep - 1, 0U) == 0 &&
        syscall(__NR_close_range, (unsigned)keep + 1, ~0U, 0U) == 0)
        return;
    long limit = sysconf(_SC_OPEN_MAX);
    if (limit < 0 || limit > 65536)
        limit = 65536;
    for (int fd = 3; fd < limit; fd++)
        if (fd != keep)
            close(fd);
}

/* What the supervisor knows of its child and itself. */
struct supervisor {
    pid_t child;      /* also the id of the child's process group */
    pid_t own_group;  /* the supervisor's process group */
    int leads_session; /* a session leader (setsid, ssh -t) */
};

/* The controlling terminal: 0, 1 or 2 when one of them is it, else a new
 * descriptor of /dev/tty (give it to release_terminal), else -1. */
static int open_terminal(void)
{
    for (int fd = 0; fd <= 2; fd++)
        if (tcgetpgrp(fd) >= 0) /* ENOTTY unless it is our controlling tty */
            return fd;
    return open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
}

static void release_terminal(int fd)
{
    if (fd > 2)
        close(fd);
}

/* Give the controlling terminal's foreground to the process group to when
 * the group from has it.  Every signal is blocked here, SIGTTOU included,
 * so the kernel lets a background process do it.  1 when it moved. */
static int move_foreground(pid_t from, pid_t to)
{
    int fd = open_terminal();
    if (fd < 0)
        return 0;
    int moved = tcgetpgrp(fd) == from && tcsetpgrp(fd, to) == 0;
    release_terminal(fd);
    return moved;
}

/* Continue the program and what it started in its group, as a shell
 * continues a job. */
static void continue_program(const struct supervisor *s)
{
    if (kill(-s->child, SIGCONT) < 0)
        kill(s->child, SIGCONT);
}

/* Take and drop the signals the child reported: they were sent to the
 * supervisor's process group while the child was still in it, so they
 * reached both.  Those pending here now were sent then or before the fork
 * (the child does not have those); a standard signal is pending once
 * however often it was sent, so dropping one never loses a send that the
 * child has not had. */
static void drop_duplicates(int from_child)
{
    sigset_t had;
    size_t got = 0;
    while (got < sizeof had) {
        ssize_t n = recv(from_child, (char *)&had + got, sizeof had - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) /* the child died before it could say */
            return;
        got += (size_t)n;
    }
    sigset_t pending;
    if (sigpending(&pending) < 0)
        return;
    const struct timespec now = {0, 0};
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGCHLD || sigismember(&had, sig) != 1 ||
            sigismember(&pending, sig) != 1)
            continue;
        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, sig);
        while (sigtimedwait(&one, NULL, &now) < 0 && errno == EINTR)
            ;
    }
}

static void forward(const struct supervisor *s, int sig, const siginfo_t *info)
{
    if (sig == SIGCHLD)
        return;
    if (info->si_code == SI_QUEUE) {
        sigqueue(s->child, sig, info->si_value);
        return;
    }
    /* The terminal sends these to the whole foreground group, the job: they
     * go on to the program's whole group, its children too, as SIGCONT does
     * (continuing this process continues the job).  Any other signal goes
     * to the program alone: kill(2) does not say whether it named this
     * process or its group. */
    int whole_group =
        sig == SIGCONT ||
        (info->si_code == SI_KERNEL &&
         (sig == SIGINT || sig == SIGQUIT || sig == SIGTSTP || sig == SIGWINCH));
    if (!whole_group || kill(-s->child, sig) < 0)
        kill(s->child, sig);
}

/* End as the child ended: its exit status, or death by its signal (the
 * default action, without a core dump of the supervisor). */
__attribute__((noreturn)) static void end_like(int status)
{
    if (WIFEXITED(status))
        _exit(WEXITSTATUS(status));
    int sig = WTERMSIG(status);
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    prctl(PR_SET_DUMPABLE, 0); /* no core even through a core_pattern pipe */
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    kill(getpid(), sig);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    sigprocmask(SIG_UNBLOCK, &one, NULL);
    _exit(128 + sig); /* a signal whose default is not to terminate */
}

/* After the child died of SIGKILL: was it because the namespace ended?
 * When its init exits, the kernel stops new processes there (a fork fails
 * with ENOMEM) and then kills every process in it. */
static int namespace_has_ended(void)
{
    pid_t probe = fork();
    if (probe == 0)
        _exit(0);
    if (probe > 0) {
        while (waitpid(probe, NULL, 0) < 0 && errno == EINTR)
            ;
        return 0;
    }
    return errno == ENOMEM;
}

static void say_why_killed(int status)
{
    static const char ended[] =
        "pyns_boot: the program was killed: the pid namespace it ran in "
        "has ended (its init process exited: the container stopped)\n";
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL &&
        namespace_has_ended()) {
        ssize_t ignored = write(2, ended, sizeof ended - 1);
        (void)ignored;
    }
}

/* Stop as the child stopped, so that a shell sees the job stop.  SIGSTOP
 * always stops; SIGTSTP, SIGTTIN and SIGTTOU are raised with their default
 * action, so the kernel applies its own rule: they stop this process unless
 * its process group is orphaned (a session leader's, for one), where they
 * are discarded.  1 when this process stopped and has been continued, 0
 * when it did not stop. */
static int stop_like(int sig)
{
    struct sigaction dfl = {.sa_handler = SIG_DFL}, old;
    sigemptyset(&dfl.sa_mask);
    if ((sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU) &&
        sigaction(sig, &dfl, &old) == 0) {
        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, sig);
        kill(getpid(), sig);
        sigprocmask(SIG_UNBLOCK, &one, NULL); /* stops here, or discarded */
        sigprocmask(SIG_BLOCK, &one, NULL);
        sigaction(sig, &old, NULL);
    } else {
        kill(getpid(), SIGSTOP);
    }
    /* Continued: the SIGCONT that woke us also stays queued (every signal
     * is blocked).  Take it here, or sigwaitinfo would forward it later and
     * undo a stop of the child that came in between.  (A stop signal sent
     * to oneself drops a SIGCONT pending from before.) */
    sigset_t cont;
    sigemptyset(&cont);
    sigaddset(&cont, SIGCONT);
    const struct timespec now = {0, 0};
    int taken;
    while ((taken = sigtimedwait(&cont, NULL, &now)) < 0 && errno == EINTR)
        ;
    return taken == SIGCONT;
}

/* The child stopped by sig. */
static void follow_stop(const struct supervisor *s, int sig)
{
    /* The program (or a process of its group: the kernel stops the whole
     * group) touched the terminal while this process's group has its
     * foreground, the job's: it is the job's to use, so the program's group
     * gets the foreground and goes on, its read or write then goes through.
     * The first use of the terminal takes this way. */
    int wants_terminal = sig == SIGTTIN || sig == SIGTTOU;
    if (wants_terminal && move_foreground(s->own_group, s->child)) {
        continue_program(s);
        return;
    }
    /* As a shell takes the terminal back from a stopped job, and nsenter
     * stops too: the job's shell sees it stop; once continued, continue
     * the program, with the terminal if it had it or wants it, when this
     * process's group has it then. */
    int had = move_foreground(s->child, s->own_group);
    if (!stop_like(sig) && wants_terminal) {
        /* SIGTTIN or SIGTTOU discarded in an orphaned group, where a plain
         * program would get EIO: the program stays stopped until continued
         * (continuing it now would only stop it again). */
        if (had)
            move_foreground(s->own_group, s->child);
        return;
    }
    if (had || wants_terminal)
        move_foreground(s->own_group, s->child);
    continue_program(s);
}

/* Reap or follow the child.  Returns only while it is still alive. */
static void check_child(const struct supervisor *s)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(s->child, &status, WNOHANG | WUNTRACED);
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid < 0) {
            static const char lost[] =
                "pyns_boot: the pid-namespace supervisor lost its child\n";
            ssize_t ignored = write(2, lost, sizeof lost - 1);
            (void)ignored;
            _exit(SUPERVISOR_LOST_CHILD);
        }
        if (pid == 0)
            return;
        if (WIFSTOPPED(status)) {
            follow_stop(s, WSTOPSIG(status));
            continue;
        }
        /* The terminal back to the group that had it, as a shell takes it
         * back from a finished job: a parent without job control (sh -c)
         * reads from it next.  Not for a session leader, whose exit hangs
         * up the foreground group: the program's group, with what the
         * program left running there, as for a plain program. */
        if (!s->leads_session)
            move_foreground(s->child, s->own_group);
        say_why_killed(status);
        end_like(status);
    }
}

void pid_entry_supervise(struct pid_entry *entry, pid_t child)
{
    close(entry->child_end);
    struct supervisor s = {
        .child = child,
        .own_group = getpgrp(),
        .leads_session = getsid(0) == getpid(),
    };
    drop_duplicates(entry->supervisor_end);
    close_descriptors(entry->supervisor_end);
    sigset_t all;
    sigfillset(&all);
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&all, &info);
        if (sig < 0) /* EINTR: a stop and continue */
            continue;
        if (sig == SIGCHLD)
            check_child(&s);
        else
            forward(&s, sig, &info);
    }
}

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
    if (pipe2(fds, O_CLOEXEC) < 0)
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
    entry->alive_read = fds[0];
    entry->alive_write = fds[1];
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
    close(entry->alive_read);
    close(entry->alive_write);
    restore_signals(entry);
    errno = error_errno;
}

void pid_entry_child(struct pid_entry *entry)
{
    close(entry->alive_write);
    /* getppid() cannot tell whether the supervisor is still there: it sits
     * outside this pid namespace, so getppid() is 0 before and after it
     * dies.  The pipe can: its last writer is the supervisor. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        raise(SIGKILL);
    struct pollfd alive = {.fd = entry->alive_read, .events = POLLIN};
    int ready;
    do
        ready = poll(&alive, 1, 0);
    while (ready < 0 && errno == EINTR);
    if (ready != 0) /* POLLHUP: the supervisor is gone; or poll failed */
        raise(SIGKILL);
    close(entry->alive_read);
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

/* Terminal-made signals (^C, ^\, ^Z, a window resize, a hangup) go to the
 * whole foreground process group, the child included: forwarding them too
 * would deliver them twice. */
static int reached_child_already(int sig, const siginfo_t *info, pid_t child)
{
    if (info->si_code != SI_KERNEL)
        return 0;
    switch (sig) {
    case SIGINT:
    case SIGQUIT:
    case SIGTSTP:
    case SIGWINCH:
    case SIGHUP:
    case SIGCONT:
        break;
    default:
        return 0;
    }
    return getsid(0) != getpid() && getpgid(child) == getpgrp();
}

static void forward(int sig, const siginfo_t *info, pid_t child)
{
    if (sig == SIGCHLD || reached_child_already(sig, info, child))
        return;
    if (info->si_code == SI_QUEUE)
        sigqueue(child, sig, info->si_value);
    else
        kill(child, sig);
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

/* Reap or follow the child.  Returns only while it is still alive. */
static void check_child(pid_t child)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(child, &status, WNOHANG | WUNTRACED);
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
        if (!WIFSTOPPED(status)) {
            say_why_killed(status);
            end_like(status);
        }
        /* As nsenter: the child stopped, so stop too (the shell sees the
         * job stop); once continued, continue the child. */
        kill(getpid(), SIGSTOP);
        /* Continued: the SIGCONT that woke us also stays queued (every
         * signal is blocked).  Take it here, or sigwaitinfo would forward
         * it later and undo a stop of the child that came in between. */
        sigset_t cont;
        sigemptyset(&cont);
        sigaddset(&cont, SIGCONT);
        const struct timespec now = {0, 0};
        while (sigtimedwait(&cont, NULL, &now) < 0 && errno == EINTR)
            ;
        kill(child, SIGCONT);
    }
}

void pid_entry_supervise(struct pid_entry *entry, pid_t child)
{
    close(entry->alive_read);
    close_descriptors(entry->alive_write);
    sigset_t all;
    sigfillset(&all);
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&all, &info);
        if (sig < 0) /* EINTR: a stop and continue */
            continue;
        if (sig == SIGCHLD)
            check_child(child);
        else
            forward(sig, &info, child);
    }
}

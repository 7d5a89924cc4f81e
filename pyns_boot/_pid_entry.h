/*
 * Entering a pid namespace for good: after setns(CLONE_NEWPID) only the
 * children of a process land in the namespace, so the hook forks once.  The
 * child continues as the program, in a process group of its own (given the
 * terminal's foreground when it uses the terminal); the parent becomes a
 * small supervisor that forwards every signal it receives once, follows stop
 * and continue as a job-control shell would, and ends as the child ended.  Free of Python (see _pyns_boot.c for the
 * fork itself, which must go through PyOS_BeforeFork/AfterFork).
 */
#ifndef PYNS_BOOT_PID_ENTRY_H
#define PYNS_BOOT_PID_ENTRY_H

#include <signal.h>
#include <sys/types.h>

#define PID_MODE_VARIABLE "PYNS_BOOT_PID"

/* What PYNS_BOOT_PID asks for. */
enum pid_request {
    PID_REQUEST_ENTER,    /* unset or empty: the program enters (default) */
    PID_REQUEST_CHILDREN, /* "children": gons's meaning, no fork */
    PID_REQUEST_INVALID,  /* anything else */
};

enum pid_request pid_entry_request(const char *value);

/* A malloc'd one-line message for an invalid PYNS_BOOT_PID value (NULL
 * when memory ran out). */
char *pid_entry_invalid_message(const char *value);

/* A malloc'd one-line message for a failed fork into the namespace
 * gons_pid names (NULL when memory ran out). */
char *pid_entry_fork_message(const char *path, int error_errno);

/* What the process had before pid_entry_prepare, and the socket pair that
 * tells the child whether its supervisor still lives (its closing) and the
 * supervisor which signals the child got before it left the supervisor's
 * process group. */
struct pid_entry {
    sigset_t old_mask;
    struct sigaction old_chld;
    int child_end;      /* the child's */
    int supervisor_end; /* the supervisor holds it until it exits */
};

/* Before fork(): block every signal (the supervisor takes them with
 * sigwaitinfo; the child restores the mask), make SIGCHLD deliverable, and
 * open the socket pair.  0, or -1 with errno set and nothing changed. */
int pid_entry_prepare(struct pid_entry *entry);

/* fork() failed: undo pid_entry_prepare. */
void pid_entry_abort(struct pid_entry *entry);

/* In the child, first thing after fork(): PR_SET_PDEATHSIG(SIGKILL), a
 * process group of its own, tell the supervisor the signals it has pending,
 * make sure the supervisor did not die before that (else die), restore the
 * signal mask and SIGCHLD. */
void pid_entry_child(struct pid_entry *entry);

/* In the parent: close every descriptor above 2, forward signals to child,
 * follow its stops (and its use of the terminal), and exit with its status
 * or die by its signal.  Never returns. */
__attribute__((noreturn)) void pid_entry_supervise(struct pid_entry *entry,
                                                   pid_t child);

#endif

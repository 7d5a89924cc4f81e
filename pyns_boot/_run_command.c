/*
 * run_command(): `pyns-boot run` with its commonest command lines, straight
 * from the command's script, importing no module of the package (the hook's
 * own Python steps aside: keep-imports after mnt, wd, ids):
 *
 *     pyns-boot run -t PID TYPE-OPTIONS... [--] -c CODE [ARG...]
 *     pyns-boot run -t PID --all           [--] -c CODE [ARG...]
 *     pyns-boot run --netns NAME           [--] -c CODE [ARG...]
 *
 * It takes the steps of pyns_boot._run_fast.run() for these (the same
 * checks, each failing one a None: "not here", before anything changed),
 * lets the start-up hook join through run(), and runs CODE as `python -c`
 * runs it, in a new __main__.  Everything else, and any doubt, is None for
 * pyns_boot._run_fast and pyns_boot.cli, which say what is wrong.  Every
 * Python object a program start loads costs instructions twice (made, then
 * traversed by the collection at exit), which is why this is C
 * (docs/development.md, "What the C does").
 */
#include <Python.h>

#include "_module.h"
#include "_startup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The rest of the command, as pyns_boot.__main__.command() takes it: the
 * names of the package this file calls (tests/test_startup_files.py checks
 * that they exist).  No other module of the package loads on the way. */
#define FAST_MODULE "pyns_boot._run_fast"
#define CLI_MODULE "pyns_boot.cli"
#define MAIN_NAME "main"

/* nsenter's short and long type options (pyns_boot._run_fast.TYPE_OPTIONS). */
static const struct {
    const char *flags[3];
    int kind;
} type_options[] = {
    {{"-C", "--cgroup", NULL}, NS_CGROUP}, {{"-i", "--ipc", NULL}, NS_IPC},
    {{"-m", "--mnt", "--mount"}, NS_MNT},  {{"-n", "--net", NULL}, NS_NET},
    {{"-p", "--pid", NULL}, NS_PID},       {{"-T", "--time", NULL}, NS_TIME},
    {{"-U", "--user", NULL}, NS_USER},     {{"-u", "--uts", NULL}, NS_UTS},
};
#define TYPE_OPTION_COUNT (sizeof(type_options) / sizeof(type_options[0]))

struct command {
    long target; /* -t PID, 0: none */
    int all;
    int types[NS_KIND_COUNT];
    const char *netns;
    Py_ssize_t program; /* index of -c, or of -cCODE */
};

static int kind_of_option(const char *option)
{
    for (size_t i = 0; i < TYPE_OPTION_COUNT; i++)
        for (int f = 0; f < 3 && type_options[i].flags[f] != NULL; f++)
            if (strcmp(option, type_options[i].flags[f]) == 0)
                return type_options[i].kind;
    return -1;
}

static long digits_value(const char *text)
{
    long value = 0;
    if (*text == '\0')
        return -1;
    for (; *text != '\0'; text++) {
        if (*text < '0' || *text > '9' || value > (INT_MAX - 9) / 10)
            return -1;
        value = value * 10 + (*text - '0');
    }
    return value;
}

/* Parse words (as os.fsencode() makes them, words[0] == "run"); 0: a
 * common command line. */
static int parse(const char *const *words, Py_ssize_t count, struct command *c)
{
    Py_ssize_t i = 1;
    memset(c, 0, sizeof(*c));
    for (; i < count; i++) {
        const char *word = words[i];
        const char *following = i + 1 < count ? words[i + 1] : NULL;
        int kind = kind_of_option(word);
        if (strcmp(word, "--") == 0) {
            i++;
            break;
        }
        if (strncmp(word, "-c", 2) == 0)
            break;
        if (strcmp(word, "-a") == 0 || strcmp(word, "--all") == 0) {
            c->all = 1;
        } else if (kind >= 0 && (following == NULL || following[0] == '-')) {
            c->types[kind] = 1;
        } else if ((strcmp(word, "-t") == 0 || strcmp(word, "--target") == 0) &&
                   following != NULL && (c->target = digits_value(following)) > 0) {
            i++;
        } else if (strcmp(word, "--netns") == 0 && following != NULL && following[0] != '-') {
            c->netns = following;
            i++;
        } else {
            return -1; /* a PATH, --container, --no-check, -h, a usage error: argparse's */
        }
    }
    if (i >= count || strncmp(words[i], "-c", 2) != 0 || (words[i][2] == '\0' && i + 1 >= count))
        return -1;
    c->program = i;
    int any_type = 0;
    for (int kind = 0; kind < NS_KIND_COUNT; kind++)
        any_type |= c->types[kind];
    if (c->netns != NULL)
        return c->target == 0 && !c->all && !any_type && c->netns[0] != '\0' &&
                       strchr(c->netns, '/') == NULL && strcmp(c->netns, ".") != 0 &&
                       strcmp(c->netns, "..") != 0
                   ? 0
                   : -1;
    return c->target > 0 && (c->all || any_type) ? 0 : -1;
}

/* Field 22 of /proc/PID/stat (the start time) into start; -1: unreadable or
 * a zombie (pyns_boot._run_fast.process_start). */
static int process_start(long pid, char *start, size_t size)
{
    char path[64], data[4096];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t length = read(fd, data, sizeof(data) - 1);
    close(fd);
    if (length <= 0)
        return -1;
    data[length] = '\0';
    char *field = strrchr(data, ')');
    if (field == NULL || field[1] != ' ' || field[2] == 'Z' || field[2] == 'X')
        return -1;
    field += 2;
    for (int n = 0; n < 19; n++) {
        field = strchr(field, ' ');
        if (field == NULL)
            return -1;
        field++;
    }
    size_t end = strcspn(field, " ");
    if (end == 0 || end >= size)
        return -1;
    memcpy(start, field, end);
    start[end] = '\0';
    return 0;
}

/* 1 when the target's namespace of kind differs from any of ours that a join
 * changes, 0 when not or the kernel lacks the type, -1 on another error
 * (pyns_boot._run_fast.differing_types). */
static int differs(long pid, int kind)
{
    char path[64];
    struct stat theirs, ours;
    snprintf(path, sizeof(path), "/proc/%ld/ns/%s", pid, ns_kinds[kind].name);
    if (stat(path, &theirs) < 0)
        return errno == ENOENT ? 0 : -1;
    for (int l = 0; l < 2 && ns_kinds[kind].self_links[l] != NULL; l++) {
        snprintf(path, sizeof(path), "/proc/self/ns/%s", ns_kinds[kind].self_links[l]);
        if (stat(path, &ours) < 0)
            return errno == ENOENT ? 0 : -1;
        if (ours.st_dev != theirs.st_dev || ours.st_ino != theirs.st_ino)
            return 1;
    }
    return 0;
}

static int check_reference(int kind, const char *path)
{
    int error_errno = 0;
    char *message = NULL;
    if (ns_check_reference(kind, path, &error_errno, &message) < 0)
        return -1;
    int checks = message == NULL; /* else pyns_boot.cli words it, with its hint */
    free(message);
    return checks ? 0 : -1;
}

static int single_thread(void)
{
    DIR *tasks = opendir("/proc/self/task");
    if (tasks == NULL)
        return 0;
    int count = 0;
    for (struct dirent *entry; (entry = readdir(tasks)) != NULL;)
        count += entry->d_name[0] != '.';
    closedir(tasks);
    return count == 1;
}

/* The hook can act here (pyns_boot._run_fast.can_join_here), installed as
 * it needs (pyns_boot.pth beside this helper): 1, 0, -1 with an exception. */
static int can_join_here(PyObject *module)
{
    PyObject *report = PyObject_CallMethod(module, "report", NULL);
    if (report == NULL)
        return -1;
    int acted = report != Py_None;
    Py_DECREF(report);
    PyObject *record = PyDict_GetItemString(PyImport_GetModuleDict(), "pyns_boot._hook_record");
    PyObject *ran = record != NULL ? PyObject_GetAttrString(record, "ran") : NULL;
    if (ran == NULL)
        PyErr_Clear(); /* getattr(record, "ran", False) */
    int true_ = ran != NULL ? PyObject_IsTrue(ran) : 0;
    Py_XDECREF(ran);
    if (true_ < 0)
        return -1;
    acted |= true_;
    PyObject *file = PyModule_GetFilenameObject(module);
    PyObject *encoded = file != NULL ? PyUnicode_EncodeFSDefault(file) : NULL;
    Py_XDECREF(file);
    if (encoded == NULL) {
        PyErr_Clear(); /* no file: not installed as the hook needs */
        return 0;
    }
    char pth[PATH_MAX];
    const char *name = PyBytes_AsString(encoded);
    const char *slash = name != NULL ? strrchr(name, '/') : NULL;
    struct stat st;
    int installed = slash != NULL &&
                    snprintf(pth, sizeof(pth), "%.*s/pyns_boot.pth", (int)(slash - name), name) <
                        (int)sizeof(pth) &&
                    stat(pth, &st) == 0;
    Py_DECREF(encoded);
    return !acted && installed && single_thread();
}

/* Choose the joins for c, each reference checked as the hook will use it,
 * the target the same process before and after; -1: not here. */
static int choose(struct command *c)
{
    char path[PATH_MAX], start[32], again[32];
    if (c->netns != NULL) {
        if (strlen(c->netns) > NAME_MAX)
            return -1;
        snprintf(path, sizeof(path), NETNS_DIR "/%s", c->netns);
        return check_reference(NS_NET, path);
    }
    if (process_start(c->target, start, sizeof(start)) < 0)
        return -1;
    int any = 0;
    for (int kind = 0; kind < NS_KIND_COUNT; kind++) {
        int wanted = c->all ? differs(c->target, kind) : c->types[kind];
        if (wanted < 0)
            return -1;
        snprintf(path, sizeof(path), "/proc/%ld/ns/%s", c->target, ns_kinds[kind].name);
        if (wanted && check_reference(kind, path) < 0)
            return -1;
        c->types[kind] = wanted;
        any |= wanted;
    }
    if (!any || process_start(c->target, again, sizeof(again)) < 0 || strcmp(start, again) != 0)
        return -1;
    return 0;
}

static int set_item(PyObject *os_environ, const char *name, PyObject *value)
{
    if (value == NULL)
        return -1;
    int result = PyMapping_SetItemString(os_environ, name, value);
    Py_DECREF(value);
    return result;
}

/* os.environ: every steering variable removed (looked up in posix.environ's
 * bytes keys, as pyns_boot.pth does), then the joins' variables set. */
static int set_variables(const struct command *c)
{
    const char *names[NS_KIND_COUNT + 1 + AFTER_JOINS_COUNT];
    int count = 0;
    for (int kind = 0; kind < NS_KIND_COUNT; kind++)
        names[count++] = ns_kinds[kind].variable;
    names[count++] = NS_ORDER_VARIABLE;
    for (int n = 0; n < AFTER_JOINS_COUNT; n++)
        names[count++] = after_joins_variables[n];
    PyObject *os = PyImport_ImportModule("os");
    PyObject *posix = os != NULL ? PyImport_ImportModule("posix") : NULL;
    PyObject *os_environ = posix != NULL ? PyObject_GetAttrString(os, "environ") : NULL;
    PyObject *raw = os_environ != NULL ? PyObject_GetAttrString(posix, "environ") : NULL;
    int result = raw != NULL ? 0 : -1;
    for (int n = 0; result == 0 && n < count; n++) {
        PyObject *key = PyBytes_FromString(names[n]);
        int set = key != NULL ? PyDict_Contains(raw, key) : -1;
        Py_XDECREF(key);
        result = set < 0 ? -1 : set ? PyMapping_DelItemString(os_environ, names[n]) : 0;
    }
    if (result == 0 && c->netns != NULL)
        result = set_item(os_environ, NETNS_VARIABLE, PyUnicode_DecodeFSDefault(c->netns));
    for (int kind = 0; result == 0 && c->netns == NULL && kind < NS_KIND_COUNT; kind++)
        if (c->types[kind])
            result = set_item(os_environ, ns_kinds[kind].variable,
                              PyUnicode_FromFormat("/proc/%ld/ns/%s", c->target, ns_kinds[kind].name));
    Py_XDECREF(raw);
    Py_XDECREF(os_environ);
    Py_XDECREF(posix);
    Py_XDECREF(os);
    return result;
}

static int flag_set(PyObject *flags, const char *name)
{
    PyObject *value = flags != NULL ? PyObject_GetAttrString(flags, name) : NULL;
    if (value == NULL)
        PyErr_Clear(); /* safe_path: 3.11+ */
    int set = value != NULL && PyObject_IsTrue(value) == 1;
    Py_XDECREF(value);
    return set;
}

/* Join through the start-up hook, as at a python start: pyns_boot._run_fast.start_here. */
static int join_here(PyObject *module, const struct command *c)
{
    if (set_variables(c) < 0)
        return -1;
    PyObject *flags = PySys_GetObject("flags"), *path = PySys_GetObject("path");
    if (!flag_set(flags, "isolated") && !flag_set(flags, "safe_path") && path != NULL &&
        PyList_Check(path) && PyList_Size(path) > 0) {
        PyObject *empty = PyUnicode_FromString(""); /* sys.path[0] as python -c sets it */
        if (empty == NULL || PyList_SetItem(path, 0, empty) < 0)
            return -1;
    }
    /* a failure now is the program's: the policy applies as at a python start (pyns_boot._policy) */
    if (PyObject_SetAttrString(module, "program_started", Py_True) < 0)
        return -1;
    const char *streams[] = {"stdout", "stderr"};
    for (int n = 0; n < 2; n++) {
        PyObject *stream = PySys_GetObject(streams[n]);
        PyObject *flushed = stream != NULL && stream != Py_None ? PyObject_CallMethod(stream, "flush", NULL)
                                                                 : (Py_INCREF(Py_None), Py_None);
        if (flushed == NULL)
            return -1;
        Py_DECREF(flushed);
    }
    PyObject *done = PyObject_CallMethod(module, "run", NULL);
    Py_XDECREF(done);
    return done != NULL ? 0 : -1;
}

/* run_command(arguments) -> 0 | None; arguments: sys.argv[1:]. */
static PyObject *setns_run_command(PyObject *module, PyObject *arguments)
{
    if (!PyList_Check(arguments)) {
        PyErr_SetString(PyExc_TypeError, "run_command() takes a list (sys.argv[1:])");
        return NULL;
    }
    Py_ssize_t count = PyList_Size(arguments);
    PyObject *encoded = PyList_New(count);
    const char **words = encoded != NULL ? PyMem_Malloc(((size_t)count + 1) * sizeof(*words)) : NULL; /* 3.8: no Calloc */
    int usable = words != NULL && count > 0;
    for (Py_ssize_t i = 0; usable && i < count; i++) {
        PyObject *word = PyList_GetItem(arguments, i);
        PyObject *bytes = word != NULL && PyUnicode_Check(word) ? PyUnicode_EncodeFSDefault(word) : NULL;
        usable = bytes != NULL && PyList_SetItem(encoded, i, bytes) == 0 &&
                 (words[i] = PyBytes_AsString(bytes)) != NULL && strlen(words[i]) == (size_t)PyBytes_Size(bytes);
    }
    PyErr_Clear(); /* a word os.fsencode() refuses, or memory: the parser's to read */
    struct command c;
    PyObject *result = NULL;
    int here = usable && strcmp(words[0], "run") == 0 && parse(words, count, &c) == 0 ? can_join_here(module) : 0;
    if (here > 0 && choose(&c) == 0)
        result = join_here(module, &c) == 0 ? run_code(arguments, c.program) : NULL;
    else if (here >= 0)
        result = (Py_INCREF(Py_None), Py_None);
    PyMem_Free((void *)words);
    Py_XDECREF(encoded);
    return result;
}

/* command() -> the pyns-boot command's exit status (its script):
 * run_command(sys.argv[1:]), else pyns_boot._run_fast.main(), else
 * pyns_boot.cli.main(), as pyns_boot.__main__.command() takes them. */
static PyObject *setns_command(PyObject *module, PyObject *Py_UNUSED(unused))
{
    PyObject *argv = PySys_GetObject("argv");
    PyObject *arguments = argv != NULL ? PyList_GetSlice(argv, 1, PyList_Size(argv)) : NULL;
    PyObject *status = arguments != NULL ? setns_run_command(module, arguments) : NULL;
    Py_XDECREF(arguments);
    const char *const rest[] = {FAST_MODULE, CLI_MODULE};
    for (int n = 0; n < 2 && status == Py_None; n++) {
        Py_DECREF(status);
        PyObject *found = PyImport_ImportModule(rest[n]);
        status = found != NULL ? PyObject_CallMethod(found, MAIN_NAME, NULL) : NULL;
        Py_XDECREF(found);
    }
    if (status == NULL && argv == NULL)
        PyErr_SetString(PyExc_RuntimeError, "pyns-boot: sys.argv is missing");
    return status;
}

static PyObject *setns_dedent_code(PyObject *Py_UNUSED(module), PyObject *code)
{
    if (!PyUnicode_Check(code))
        return PyErr_Format(PyExc_TypeError, "dedent_code() takes a str");
    return code_as_python_c_takes_it(code);
}

PyMethodDef run_command_methods[] = {
    {"command", setns_command, METH_NOARGS,
     "command() -> the pyns-boot command's exit status (its script):\n"
     "run_command(sys.argv[1:]), else pyns_boot._run_fast.main(), else\n"
     "pyns_boot.cli.main(), as pyns_boot.__main__.command()."},
    {"dedent_code", setns_dedent_code, METH_O,
     "dedent_code(code) -> code as python -c compiles it on this version\n"
     "(3.14+: without the leading blanks all its lines share)."},
    {"run_command", setns_run_command, METH_O,
     "run_command(sys.argv[1:]) -> 0 | None: `pyns-boot run` with -t PID and\n"
     "type options or --all, or --netns NAME, and -c CODE: joined through\n"
     "run() and CODE run in a new __main__ (0; its exception propagates,\n"
     "SystemExit too); None, with nothing changed, for any other command line\n"
     "or when the hook cannot act here (pyns_boot._run_fast and cli do it)."},
    {NULL, NULL, 0, NULL},
};

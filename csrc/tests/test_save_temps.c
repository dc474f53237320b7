/* The temporary files of ffnc_safetensors_writer_save (and so of ffnc_model_save), named and
 * locked as Python's ffnc.io names and locks its own: ".<name>.ffnc-<random>.tmp", flock-ed by
 * the writer until renamed. A save removes the unlocked ones of earlier saves to the same
 * target and nothing else: not a live writer's (locked), not another target's, not a FIFO or a
 * symlink that happens to have such a name. A writer killed mid-write leaves one, which the
 * next save removes. */
#define _DEFAULT_SOURCE /* flock, mkdtemp */
#define _DARWIN_C_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define TARGET "m.safetensors"
#define TEMP_PREFIX "." TARGET ".ffnc-"

static char dir[64];

static const char *in_dir(const char *name) {
    static char buf[4][192];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static int exists(const char *name) {
    struct stat st;
    return lstat(in_dir(name), &st) == 0;
}

static void make_file(const char *name) {
    FILE *f = fopen(in_dir(name), "wb");
    CHECK(f != NULL);
    if (f) {
        fputs("a half-written checkpoint", f);
        fclose(f);
    }
}

/* Temporary files of saves to TARGET in the directory now. */
static int count_temps(void) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name);
        n += strncmp(e->d_name, TEMP_PREFIX, strlen(TEMP_PREFIX)) == 0 && len > 4 &&
             strcmp(e->d_name + len - 4, ".tmp") == 0;
    }
    closedir(d);
    return n;
}

/* A file a writer makes: a small F32 tensor of value `v`, saved to `path`. */
static ffnc_status save(const char *path, float v) {
    ffnc_safetensors_writer *w = NULL;
    ffnc_status s = ffnc_safetensors_writer_create(&w);
    float data[3] = {v, v, v};
    size_t shape[1] = {3};
    if (s == FFNC_OK) s = ffnc_safetensors_writer_add(w, "w", FFNC_TENSOR_F32, 1, shape, data);
    if (s == FFNC_OK) s = ffnc_safetensors_writer_save(w, path);
    ffnc_safetensors_writer_free(w);
    return s;
}

static float saved_value(const char *path) {
    ffnc_safetensors *f = NULL;
    float data[3] = {-1, -1, -1};
    if (ffnc_safetensors_load(path, &f) == FFNC_OK)
        ffnc_safetensors_read(f, "w", FFNC_TENSOR_F32, 3, data);
    ffnc_safetensors_free(f);
    return data[0];
}

static void test_stale_temps_go_and_the_rest_stays(void) {
    make_file(TEMP_PREFIX "stale1.tmp");        /* a killed Python writer's */
    make_file(TEMP_PREFIX "ab12cd34ef56.tmp");  /* a killed C writer's */
    make_file(TEMP_PREFIX "live.tmp");
    make_file(".other.safetensors.ffnc-x.tmp"); /* another target's */
    make_file(TEMP_PREFIX "x.tmp.keep");        /* not a temporary file's name */
    make_file(TARGET ".tmp-1-2");               /* not one either */
    CHECK(mkfifo(in_dir(TEMP_PREFIX "fifo.tmp"), 0600) == 0); /* must not block the save */
    make_file("elsewhere");
    CHECK(symlink("elsewhere", in_dir(TEMP_PREFIX "link.tmp")) == 0);
    /* a live writer holds its lock (flock locks belong to the open file, so this process's
     * own lock counts against the save's attempt) */
    int live = open(in_dir(TEMP_PREFIX "live.tmp"), O_RDWR);
    CHECK(live >= 0 && flock(live, LOCK_EX) == 0);

    CHECK_OK(save(in_dir(TARGET), 1.0f));
    CHECK(saved_value(in_dir(TARGET)) == 1.0f);
    CHECK(!exists(TEMP_PREFIX "stale1.tmp"));
    CHECK(!exists(TEMP_PREFIX "ab12cd34ef56.tmp"));
    CHECK(exists(TEMP_PREFIX "live.tmp"));
    CHECK(exists(".other.safetensors.ffnc-x.tmp"));
    CHECK(exists(TEMP_PREFIX "x.tmp.keep"));
    CHECK(exists(TARGET ".tmp-1-2"));
    CHECK(exists(TEMP_PREFIX "fifo.tmp"));
    CHECK(exists(TEMP_PREFIX "link.tmp") && exists("elsewhere"));
    CHECK(count_temps() == 3); /* the live one, the FIFO, the symlink: the save left none */

    /* its writer gone (the lock with it), the next save removes it */
    close(live);
    CHECK_OK(save(in_dir(TARGET), 2.0f));
    CHECK(saved_value(in_dir(TARGET)) == 2.0f);
    CHECK(!exists(TEMP_PREFIX "live.tmp"));
    CHECK(count_temps() == 2);

    const char *others[] = {TEMP_PREFIX "fifo.tmp", TEMP_PREFIX "link.tmp", "elsewhere",
                            ".other.safetensors.ffnc-x.tmp", TEMP_PREFIX "x.tmp.keep",
                            TARGET ".tmp-1-2"};
    for (size_t i = 0; i < sizeof others / sizeof *others; i++) unlink(in_dir(others[i]));
}

/* A save that fails at the rename (the target is a non-empty directory) leaves no temporary
 * file; a bare file name saves in the current directory. */
static void test_failed_save_leaves_nothing(void) {
    CHECK(mkdir(in_dir("taken"), 0700) == 0);
    make_file("taken/inside");
    CHECK_STATUS(save(in_dir("taken"), 1.0f), FFNC_ERR_IO);
    DIR *d = opendir(dir);
    int leftovers = 0;
    for (struct dirent *e; d && (e = readdir(d)) != NULL;)
        leftovers += strncmp(e->d_name, ".taken.ffnc-", strlen(".taken.ffnc-")) == 0;
    if (d) closedir(d);
    CHECK(leftovers == 0);
    unlink(in_dir("taken/inside"));
    rmdir(in_dir("taken"));
}

/* The name a writer uses, seen while it writes: TEMP_PREFIX, 12 characters of [a-z0-9], ".tmp".
 * Then the writer is killed (SIGKILL, mid-write or between two saves) and the next save
 * removes whatever it left. */
static int temp_name_seen(char *name, size_t room) {
    DIR *d = opendir(dir);
    int found = 0;
    for (struct dirent *e; d && !found && (e = readdir(d)) != NULL;) {
        if (strncmp(e->d_name, TEMP_PREFIX, strlen(TEMP_PREFIX)) != 0) continue;
        snprintf(name, room, "%s", e->d_name);
        found = 1;
    }
    if (d) closedir(d);
    return found;
}

static void test_killed_writer(void) {
    enum { BIG = 8 << 20 }; /* floats: 32 MiB, a write long enough to be seen */
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        alarm(30); /* never outlive a failed parent */
        float *data = calloc(BIG, sizeof *data);
        ffnc_safetensors_writer *w = NULL;
        size_t shape[1] = {BIG};
        if (!data || ffnc_safetensors_writer_create(&w) != FFNC_OK ||
            ffnc_safetensors_writer_add(w, "w", FFNC_TENSOR_F32, 1, shape, data) != FFNC_OK)
            _exit(3);
        for (;;)
            if (ffnc_safetensors_writer_save(w, in_dir(TARGET)) != FFNC_OK) _exit(4);
    }
    if (child < 0) return;
    char name[256] = "";
    int seen = 0;
    for (int i = 0; i < 200000 && !seen; i++) {
        seen = temp_name_seen(name, sizeof name);
        if (!seen) {
            struct timespec wait = {0, 50000};
            nanosleep(&wait, NULL);
        }
    }
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL); /* not an early _exit */
    CHECK(seen);
    size_t len = strlen(name), fixed = strlen(TEMP_PREFIX);
    int well_formed = len == fixed + 12 + 4 && strcmp(name + len - 4, ".tmp") == 0;
    for (size_t i = fixed; well_formed && i < fixed + 12; i++)
        well_formed = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9');
    CHECK(well_formed);
    if (!well_formed) fprintf(stderr, "temporary file name: %s\n", name);

    CHECK_OK(save(in_dir(TARGET), 3.0f));
    CHECK(count_temps() == 0);
    CHECK(saved_value(in_dir(TARGET)) == 3.0f);
}

/* A bare file name: the temporary file, and the scan, in the current directory. */
static void test_bare_name(void) {
    if (chdir(dir) != 0) {
        CHECK(0);
        return;
    }
    FILE *f = fopen(TEMP_PREFIX "stale.tmp", "wb");
    CHECK(f != NULL);
    if (f) fclose(f);
    CHECK_OK(save(TARGET, 4.0f));
    CHECK(saved_value(TARGET) == 4.0f);
    CHECK(access(TEMP_PREFIX "stale.tmp", F_OK) != 0);
    CHECK(chdir("..") == 0);
    CHECK(count_temps() == 0);
}

int main(void) {
    snprintf(dir, sizeof dir, "test_save_temps_%ld_XXXXXX", (long)getpid());
    if (!mkdtemp(dir)) {
        fprintf(stderr, "test_save_temps: cannot create a directory\n");
        return 1;
    }
    test_stale_temps_go_and_the_rest_stays();
    test_failed_save_leaves_nothing();
    test_killed_writer();
    test_bare_name();
    unlink(in_dir(TARGET));
    CHECK(rmdir(dir) == 0); /* nothing else left behind */
    return check_report("save_temps");
}

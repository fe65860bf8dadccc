/* execargv0 PATH ARGV0 ARGS...: executes PATH with the argument vector
 * ARGV0 ARGS... (tonistiigi/binfmt's test/exec/execargv0.go): an absolute
 * PATH as is, `./x` made absolute, anything else looked up in PATH. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: execargv0 PATH ARGV0 [ARGS...]\n");
        return 2;
    }
    char path[PATH_MAX];
    const char *target = argv[1];
    if (target[0] == '/') {
        snprintf(path, sizeof path, "%s", target);
    } else if (strncmp(target, "./", 2) == 0) {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd))
            return 1;
        snprintf(path, sizeof path, "%s/%s", cwd, target + 2);
    } else {
        const char *dirs = getenv("PATH");
        char *copy = strdup(dirs ? dirs : "/usr/bin:/bin");
        int found = 0;
        for (char *dir = strtok(copy, ":"); dir && !found; dir = strtok(NULL, ":")) {
            snprintf(path, sizeof path, "%s/%s", dir, target);
            found = access(path, X_OK) == 0;
        }
        if (!found) {
            fprintf(stderr, "execargv0: %s: not found in PATH\n", target);
            return 127;
        }
    }
    execv(path, argv + 2);
    perror("execargv0: execv");
    return 126;
}
